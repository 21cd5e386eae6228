"""The ``ternlib`` command (also ``python -m ternlib``): one module per subcommand.

Each subcommand module has ``NAME``, ``add_parser(subparsers)`` and ``run(args) -> int``; options
that set a config dataclass are generated from it (:mod:`ternlib.cli.options`).

Example:
    >>> from ternlib.cli import build_parser
    >>> sorted(build_parser()._subparsers._group_actions[0].choices)
    ['ann', 'bench', 'data', 'distill', 'eval', 'export', 'quantize', 'storage', 'vision']
"""
from __future__ import annotations

import argparse
import sys

from . import ann, bench, data, distill, evaluate, export, quantize, storage, vision

COMMANDS = (distill, evaluate, quantize, storage, export, bench, ann, vision, data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ternlib",
        description="Turn embedding models into ternary-weight models (-1, 0, +1 times a scale), "
        "distill them from the full-precision original, and evaluate them. Offline, the default "
        "model is the bundled all-MiniLM-L6-v2. Also runs as python -m ternlib.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = command.add_parser(sub)
        p.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", 0):  # every command with --threads: torch's CPU threads (0 keeps torch's default)
        import torch

        torch.set_num_threads(args.threads)
    args.argv = list(sys.argv[1:] if argv is None else argv)[1:]
    return args.func(args)

"""Command line: ``python -m ternlib {quantize,storage} ...`` (``--help`` on each)."""
from __future__ import annotations

import argparse
import json
import sys


def _quantize(args: argparse.Namespace) -> int:
    from . import Int8EmbeddingConfig, TernaryConfig, load_text_encoder, quantize_, save, storage_report

    config = TernaryConfig(rule=args.rule, beta=args.beta, granularity=args.granularity,
                           group_size=args.group_size, packing=args.packing)
    model = load_text_encoder(args.model)
    quantize_(model, config)
    if args.int8_embeddings:
        quantize_(model, Int8EmbeddingConfig(min_rows=1000))
    path = save(model, args.out)
    print(storage_report(model))
    print(f"\nsaved to {path}")
    return 0


def _storage(args: argparse.Namespace) -> int:
    from . import load, storage_report

    report = storage_report(load(args.path))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ternlib",
        description="Turn embedding models into ternary-weight models (-1, 0, +1 times a scale).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser(
        "quantize",
        help="ternarize a sentence-transformers model by round-to-nearest (no training) and save it",
        description="Replace every Linear of a sentence-transformers model by a ternary one "
        "(round-to-nearest, no distillation) and save it packed. Offline, the default model is "
        "the bundled all-MiniLM-L6-v2.",
    )
    q.add_argument("--model", default=None, help="hub id or local path (default: all-MiniLM-L6-v2)")
    q.add_argument("--out", required=True, help="checkpoint directory to write")
    q.add_argument("--rule", choices=["absmean", "twn"], default="absmean")
    q.add_argument("--beta", type=float, default=2.0, help="absmean scale multiplier (paper: 2)")
    q.add_argument("--granularity", choices=["tensor", "row", "group"], default="tensor")
    q.add_argument("--group-size", type=int, default=128)
    q.add_argument("--packing", choices=["2bit", "5trit"], default="2bit")
    q.add_argument("--int8-embeddings", action="store_true", help="also store embedding tables as int8")
    q.set_defaults(func=_quantize)

    s = sub.add_parser("storage", help="print the storage report of a saved checkpoint")
    s.add_argument("path", help="checkpoint directory written by ternlib.save")
    s.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    s.set_defaults(func=_storage)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""``ternlib storage``: the storage report of a saved checkpoint."""
from __future__ import annotations

import argparse
import json

NAME = "storage"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help="print the storage report of a saved checkpoint")
    p.add_argument("path", help="checkpoint directory written by ternlib.save")
    p.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    return p


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load
    from ..storage import storage_report

    report = storage_report(load(args.path))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0

"""``ternlib quantize``: ternarize a sentence-transformers model by round-to-nearest (no training) and save it."""
from __future__ import annotations

import argparse

from .common import add_ternary_options, ternary_config

NAME = "quantize"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        NAME,
        help="ternarize a sentence-transformers model by round-to-nearest (no training) and save it",
        description="Replace every Linear of a sentence-transformers model by a ternary one "
        "(round-to-nearest, no distillation) and save it packed. Example: ternlib quantize --out ck --packing 5trit",
    )
    p.add_argument("--model", default=None, help="hub id or local path (default: all-MiniLM-L6-v2)")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--int8-embeddings", action="store_true", help="also store embedding tables as int8")
    add_ternary_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import save
    from ..embedding import Int8EmbeddingConfig
    from ..models import load_text_encoder
    from ..quantize import quantize_
    from ..storage import storage_report

    model = load_text_encoder(args.model)
    quantize_(model, ternary_config(args))
    if args.int8_embeddings:
        quantize_(model, Int8EmbeddingConfig(min_rows=1000))
    path = save(model, args.out)
    print(storage_report(model))
    print(f"\nsaved to {path}")
    return 0

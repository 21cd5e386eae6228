"""``ternlib eval``: evaluate an encoder (FP32, or a ternlib checkpoint) on the offline text suite."""
from __future__ import annotations

import argparse
import time

from .common import add_ternary_options, load_any, ternary_config
from .options import add_threads

NAME = "eval"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        NAME,
        help="evaluate an encoder on the offline text suite",
        description="Run the evaluation suite (WordNet retrieval, Lee STS, word similarity, classification) "
        "on a full-precision encoder (hub id or path) or a ternlib checkpoint directory. "
        "Example: ternlib eval --model runs/best/model --fast --baseline fp32.json",
    )
    p.add_argument("--model", default=None,
                   help="hub id, local path, or ternlib checkpoint (default: all-MiniLM-L6-v2)")
    p.add_argument("--preset", choices=["fast", "book", "full"], default="book",
                   help="fast: small samples (about a minute; CI); book: the samples behind the book's tables "
                   "(minutes); full: every item (WordNet: ~165k texts, ~40 min a model on one CPU thread)")
    p.add_argument("--fast", action="store_true", help="same as --preset fast")
    p.add_argument("--tasks", nargs="*", help="task names (default: all)")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--baseline", help="results JSON to compare with (adds a retention column)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    add_threads(p)
    p.add_argument("--round-to-nearest", action="store_true",
                   help="ternarize the model by round-to-nearest first (no training), with the TernaryConfig options")
    p.add_argument("--activations", choices=["float", "int8"],
                   help="activation precision of the ternary layers (default: as saved; int8 = per-token int8, "
                   "the fast CPU path)")
    add_ternary_options(p, exclude=("activations",))
    return p


def run(args: argparse.Namespace) -> int:
    from ..evaluation import BOOK_SIZES, evaluate, load_results, results_table, save_results
    from ..quantize import freeze_, quantize_

    model = load_any(args.model, args.activations)
    rtn = ternary_config(args, activations=args.activations) if args.round_to_nearest else None
    if rtn is not None:
        freeze_(quantize_(model, rtn))
    t0 = time.perf_counter()
    preset = "fast" if args.fast else args.preset
    sizes = BOOK_SIZES if preset == "book" else None
    results = evaluate(model, tasks=args.tasks, fast=preset == "fast", sizes=sizes, batch_size=args.batch_size,
                       seed=args.seed)
    results["preset"] = preset
    results["model"] = args.model or "sentence-transformers/all-MiniLM-L6-v2"
    results["round_to_nearest"] = rtn.to_dict() if rtn is not None else None
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    if args.out:
        save_results(results, args.out)
    baseline = load_results(args.baseline) if args.baseline else None
    print(results_table(results, baseline=baseline))
    return 0

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
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="the model's dtype: bfloat16 casts it (model.to(torch.bfloat16): layer norms, attention and "
                   "the ternary layers' float activations in bf16; ternary scales stay float32)")
    p.add_argument("--record", action="store_true",
                   help="record the scores in the checkpoint (--model's quality.json), so that ternlib.load picks "
                   "int8 activations by default where they score within 0.5 points of float activations")
    p.add_argument("--lean", action="store_true",
                   help="encode through ternlib.LeanEncoder, the serving path the benchmark times (lean forward, "
                   "padding skipped), instead of the model's own encode")
    add_ternary_options(p, exclude=("activations",))
    g = p.add_argument_group("integer-weight baselines (ternlib.intquant: simulated, every Linear but task heads)")
    g.add_argument("--int-bits", type=int, choices=range(2, 9), metavar="{2..8}",
                   help="quantize the weights to this many bits first (round to nearest, or GPTQ)")
    g.add_argument("--int-group", default="128",
                   help="input columns per scale and zero point, or 'row' for one per output row (default 128)")
    g.add_argument("--int-method", choices=["rtn", "gptq"], default="rtn", help="round to nearest, or GPTQ")
    g.add_argument("--calibration", type=int, default=128,
                   help="GPTQ: number of Brown training sentences run through the model for each layer (default 128)")
    return p


def int_baseline(model, args: argparse.Namespace) -> dict:
    """Quantize ``model``'s weights in place as --int-* say; returns what the results record."""
    from ..intquant import IntConfig, int_quantize_, mean_bits

    if args.int_group != "row" and not args.int_group.isdigit():
        raise SystemExit(f"ternlib eval: --int-group must be a positive number or 'row', got {args.int_group!r}")
    config = IntConfig(bits=args.int_bits, group_size=None if args.int_group == "row" else int(args.int_group),
                       method=args.int_method)
    calibration = None
    if config.method == "gptq":
        from ..data.corpus import training_sentences

        sentences = training_sentences(n=args.calibration, seed=args.seed)

        def calibration(m):
            return m.encode(sentences, batch_size=32, show_progress_bar=False)

    report = int_quantize_(model, config, calibration=calibration)
    return {**config.to_dict(), "name": config.name, "bits_per_weight": mean_bits(report, model),
            "calibration_sentences": args.calibration if config.method == "gptq" else 0,
            "mean_rel_error": sum(r["rel_error"] for r in report.values()) / len(report)}


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import record_quality
    from ..evaluation import BOOK_SIZES, evaluate, load_results, results_table, save_results
    from ..quantize import freeze_, quantize_, ternary_modules
    from ..serving import LeanEncoder

    model = load_any(args.model, args.activations)
    rtn = ternary_config(args, activations=args.activations) if args.round_to_nearest else None
    if rtn is not None and args.int_bits:
        raise SystemExit("ternlib eval: --round-to-nearest (ternary) and --int-bits (integer) exclude each other")
    if args.record and (rtn is not None or args.int_bits or next(ternary_modules(model), None) is None):
        raise SystemExit("ternlib eval: --record writes into a ternlib checkpoint: give --model a checkpoint "
                         "directory, without --round-to-nearest or --int-bits")
    if args.record and args.dtype != "float32":
        raise SystemExit("ternlib eval: --record stores the float32 model's scores (what ternlib.load returns); "
                         "evaluate a --dtype bfloat16 model without --record")
    if args.lean and args.record:
        raise SystemExit("ternlib eval: --record stores the model's own encode scores; evaluate --lean without it")
    if rtn is not None:
        freeze_(quantize_(model, rtn))
    int_quant = int_baseline(model, args) if args.int_bits else None
    if args.dtype != "float32":
        import torch

        model = model.to(getattr(torch, args.dtype))
    t0 = time.perf_counter()
    preset = "fast" if args.fast else args.preset
    sizes = BOOK_SIZES if preset == "book" else None
    encoder = LeanEncoder(model) if args.lean else model
    results = evaluate(encoder, tasks=args.tasks, fast=preset == "fast", sizes=sizes, batch_size=args.batch_size,
                       seed=args.seed)
    results["preset"] = preset
    results["model"] = args.model or "sentence-transformers/all-MiniLM-L6-v2"
    results["round_to_nearest"] = rtn.to_dict() if rtn is not None else None
    layers = list(ternary_modules(model))
    results["activations"] = layers[0][1].config.activations if layers else None  # what the ternary layers ran at
    results["dtype"] = args.dtype
    results["encoder"] = "LeanEncoder" if args.lean else "model.encode"
    if int_quant is not None:
        results["int_quant"] = int_quant
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    if args.out:
        save_results(results, args.out)
    if args.record:
        record_quality(args.model, results)
        print(f"recorded the {results['activations']} activations' scores in {args.model}")
    baseline = load_results(args.baseline) if args.baseline else None
    print(results_table(results, baseline=baseline))
    return 0

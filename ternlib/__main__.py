"""Command line: ``python -m ternlib {distill,eval,ablate,quantize,storage,bench,ann,vision} ...`` (``--help`` on each)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def _ternary_args(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = (lambda v: v) if defaults else (lambda v: None)
    p.add_argument("--rule", choices=["absmean", "twn"], default=d("absmean"), help="ternarization rule")
    p.add_argument("--beta", type=float, default=d(2.0), help="absmean scale multiplier (paper: 2, BitNet: 1)")
    p.add_argument("--granularity", choices=["tensor", "row", "group"], default=d("tensor"),
                   help="one scale per tensor (paper), per output row, or per group of input columns")
    p.add_argument("--group-size", type=int, default=d(128), help="columns per scale group")
    p.add_argument("--packing", choices=["2bit", "5trit"], default=d("2bit"), help="storage format of the codes")


def _config_from(args: argparse.Namespace, base=None, **extra):
    from . import TernaryConfig

    base = TernaryConfig(**{**(base or TernaryConfig()).to_dict(), **{k: v for k, v in extra.items() if v is not None}})
    kw = {k: getattr(args, a) for k, a in (("rule", "rule"), ("beta", "beta"), ("granularity", "granularity"),
                                           ("group_size", "group_size"), ("packing", "packing"))
          if getattr(args, a, None) is not None}
    return TernaryConfig(**{**base.to_dict(), **kw})


def _load_any(path_or_id: str | None, activations: str | None = None):
    """A ternlib checkpoint directory -> ternlib.load; anything else -> the FP32 text encoder."""
    from . import load, load_text_encoder

    if path_or_id and (Path(path_or_id) / "ternlib.json").exists():
        return load(path_or_id, activations=activations)
    return load_text_encoder(path_or_id)


def _quantize(args: argparse.Namespace) -> int:
    from . import Int8EmbeddingConfig, load_text_encoder, quantize_, save, storage_report

    model = load_text_encoder(args.model)
    quantize_(model, _config_from(args))
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


def _parse_losses(text: str | None) -> dict | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise SystemExit(f"--losses: cannot read the weight in {part!r}; write e.g. hidden_mse=1,pooled_cos=0.5")
    return out


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: no CUDA GPU is available to PyTorch here; use --device cpu")
    return name


def _distill(args: argparse.Namespace) -> int:
    from . import Int8EmbeddingConfig, quantize_, save, storage_report
    from .corpus import read_text_file, training_sentences
    from .distill import distill, make_student, recipe
    from .models import load_text_encoder

    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr),
                                   ("max_seq_length", args.max_seq_length), ("seed", args.seed),
                                   ("checkpoint_every", args.checkpoint_every), ("losses", _parse_losses(args.losses)),
                                   ("warmup_ratio", args.warmup_ratio))
                 if v is not None}
    if args.bf16:
        overrides["bf16"] = True
    tconfig, dconfig = recipe(args.recipe, **overrides)
    tconfig = _config_from(args, tconfig)
    texts = read_text_file(args.text_file) if args.text_file else training_sentences(args.train_sentences, seed=args.seed or 0)
    out = Path(args.out)
    print(f"recipe {args.recipe}: {tconfig}\n{dconfig}\ntraining text: {len(texts):,} items", flush=True)
    device = _device(args.device)
    print(f"device: {device}", flush=True)
    teacher = load_text_encoder(args.model, device=device)
    student = make_student(teacher, tconfig)
    res = distill(teacher, student, texts, dconfig, output_dir=out / "training", resume=not args.no_resume,
                  stop_after=args.stop_after)
    done = res.history[-1]["step"] if res.history else 0
    (out / "history.json").write_text(json.dumps(res.history, indent=1))
    if done < dconfig.steps:
        print(f"stopped at step {done} of {dconfig.steps}; run the command again without --stop-after to resume")
        return 0
    if args.int8_embeddings:
        quantize_(student, Int8EmbeddingConfig(min_rows=1000))
    save(student, out / "model")
    run = {"recipe": args.recipe, "ternary_config": tconfig.to_dict(), "distill_config": dconfig.to_dict(),
           "train_items": len(texts), "training_seconds": round(res.seconds, 1),
           "command": "python -m ternlib " + " ".join(sys.argv[1:])}
    (out / "run.json").write_text(json.dumps(run, indent=1))
    print(storage_report(student))
    print(f"\nsaved the packed ternary model to {out / 'model'} ({res.seconds / 60:.1f} min)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from . import freeze_, quantize_
    from .evaluation import evaluate, load_results, results_table, save_results

    model = _load_any(args.model, args.activations)
    if args.round_to_nearest:
        quantize_(model, _config_from(args, activations=args.activations))
        freeze_(model)
    t0 = time.perf_counter()
    from .evaluation import BOOK_SIZES

    preset = "fast" if args.fast else args.preset
    sizes = BOOK_SIZES if preset == "book" else None
    results = evaluate(model, tasks=args.tasks, fast=preset == "fast", sizes=sizes, batch_size=args.batch_size,
                       seed=args.seed)
    results["preset"] = preset
    results["model"] = args.model or "sentence-transformers/all-MiniLM-L6-v2"
    results["round_to_nearest"] = _config_from(args, activations=args.activations).to_dict() if args.round_to_nearest else None
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    if args.out:
        save_results(results, args.out)
    baseline = load_results(args.baseline) if args.baseline else None
    print(results_table(results, baseline=baseline))
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from .ablation import AXES, run_ablation

    axes = tuple(args.axes or AXES)
    rows = run_ablation(args.out, axes=axes, base=args.recipe, steps=args.steps, batch_size=args.batch_size,
                        fast=not args.full_eval, seed=args.seed)
    print("\n| axis | variant | final loss | average retention |\n|---|---|---:|---:|")
    for r in rows:
        loss = "-" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
        print(f"| {r['axis']} | {r['variant']} | {loss} | {r['retention']['average']:.4f} |")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from . import bench

    res = bench.run(quick=args.quick, checkpoint=args.checkpoint, threads=args.threads or None)
    print(bench.table(res))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"\nwrote {args.out}")
    if args.plot:
        bench.plot(res, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _ann(args: argparse.Namespace) -> int:
    from . import ann

    unknown = [n for n in args.indexes if n not in ann.PRESETS]
    if unknown:
        raise SystemExit(f"--indexes: unknown {', '.join(unknown)}; choose from {', '.join(ann.PRESETS)}")
    try:
        import faiss
    except ImportError:
        raise SystemExit(f"python -m ternlib ann needs FAISS: {ann.FAISS_INSTALL}")
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    data = ann.load_corpus(args.sample, args.docs, seed=args.seed) if args.sample else ann.load_corpus()
    encoders = [ann.load_encoder(spec) for spec in args.encoder]
    teacher = None if any(e.key.startswith("fp32") for e in encoders) else ann.load_encoder("fp32")
    res = ann.benchmark(encoders, data, indexes=args.indexes, k=args.k, teacher=teacher,
                        cache_dir=None if args.no_cache else args.cache_dir, progress=not args.quiet)
    res["command"] = "python -m ternlib ann " + " ".join(args.argv)
    print(ann.table(res))
    for t in ann.targets(res):
        print(f"- {t['target']}: {t['measured']} -> {'met' if t['met'] else 'NOT met'}")
    if args.out:
        ann.save_results(res, args.out)
        print(f"\nwrote {args.out}")
    return 0


def _vision(args: argparse.Namespace) -> int:
    from .vision import ImageExperimentConfig, results_table, run_experiment

    cfg = ImageExperimentConfig.fast() if args.fast else ImageExperimentConfig()
    over = {k: v for k, v in (("teacher_epochs", args.teacher_epochs), ("distill_steps", args.steps),
                              ("n_train", args.train_images), ("recipes", tuple(args.recipes) if args.recipes else None))
            if v is not None}
    cfg = dataclasses.replace(cfg, **over)
    res = run_experiment(args.out, cfg, teacher_dir=args.teacher, data_root=args.data, progress=not args.quiet)
    print(results_table(res))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ternlib",
        description="Turn embedding models into ternary-weight models (-1, 0, +1 times a scale), "
        "distill them from the full-precision original, and evaluate them. Offline, the default "
        "model is the bundled all-MiniLM-L6-v2.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser(
        "distill",
        help="ternarize a sentence-transformers model and train it by self-distillation",
        description="Self-taught distillation: the frozen full-precision model (teacher) teaches its "
        "ternary copy (student) on unlabelled text. Writes OUT/model (the packed ternary model, load it "
        "with ternlib.load), OUT/training/step_*/ (resumable checkpoints: run the same command again "
        "after an interruption and it continues where it stopped), OUT/history.json and OUT/run.json. "
        "Example: python -m ternlib distill --recipe best --steps 600 --bf16 --out runs/best (CPU), "
        "python -m ternlib distill --recipe large-batch --int8-embeddings --out runs/large (GPU)",
    )
    d.add_argument("--out", required=True, help="output directory")
    d.add_argument("--recipe", default="best",
                   help="named recipe: 'paper' (hidden-state MSE), 'best' (CPU: + pooled and relational terms) "
                   "or 'large-batch' (GPU: best + contrastive, 256 sentences x 1,200 steps)")
    d.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: a CUDA GPU when there is one)")
    d.add_argument("--model", default=None, help="teacher: hub id or local path (default: all-MiniLM-L6-v2)")
    d.add_argument("--steps", type=int, help="optimizer steps")
    d.add_argument("--batch-size", type=int, help="sentences per step")
    d.add_argument("--lr", type=float, help="peak learning rate (AdamW)")
    d.add_argument("--warmup-ratio", type=float, help="fraction of steps of linear warm-up")
    d.add_argument("--max-seq-length", type=int, help="tokens per sentence (longer ones are cut)")
    d.add_argument("--losses", help="loss weights, e.g. hidden_mse=1,pooled_cos=1,relational=1,layer_mse=0.5")
    d.add_argument("--seed", type=int, help="seed of data order and dropout")
    d.add_argument("--checkpoint-every", type=int, help="steps between resumable checkpoints")
    d.add_argument("--stop-after", type=int, help="stop after this many steps (resume later)")
    d.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints in OUT/training")
    d.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the student")
    d.add_argument("--train-sentences", type=int, help="sample this many Brown training sentences (default: all)")
    d.add_argument("--text-file", help="train on this UTF-8 file instead (one sentence per line)")
    d.add_argument("--int8-embeddings", action="store_true", help="store the token embeddings as int8 in OUT/model")
    d.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    _ternary_args(d, defaults=False)
    d.set_defaults(func=_distill)

    e = sub.add_parser(
        "eval",
        help="evaluate an encoder on the offline text suite",
        description="Run the evaluation suite (WordNet retrieval, Lee STS, word similarity, classification) "
        "on a full-precision encoder (hub id or path) or a ternlib checkpoint directory. "
        "Example: python -m ternlib eval --model runs/best/model --fast --baseline fp32.json",
    )
    e.add_argument("--model", default=None, help="hub id, local path, or ternlib checkpoint (default: all-MiniLM-L6-v2)")
    e.add_argument("--preset", choices=["fast", "book", "full"], default="book",
                   help="fast: small samples (about a minute; CI); book: the samples behind the book's tables "
                   "(minutes); full: every item (WordNet: ~165k texts, ~40 min a model on one CPU thread)")
    e.add_argument("--fast", action="store_true", help="same as --preset fast")
    e.add_argument("--tasks", nargs="*", help="task names (default: all)")
    e.add_argument("--out", help="write the results as JSON here")
    e.add_argument("--baseline", help="results JSON to compare with (adds a retention column)")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    e.add_argument("--round-to-nearest", action="store_true",
                   help="ternarize the model by round-to-nearest first (no training), with the options below")
    e.add_argument("--activations", choices=["float", "int8"],
                   help="activation precision of the ternary layers (default: as saved; int8 = per-token int8, "
                   "the fast CPU path)")
    _ternary_args(e)
    e.set_defaults(func=_eval)

    b = sub.add_parser(
        "bench",
        help="time ternary layers and the ternary MiniLM against FP32, bf16 and int8 dynamic quantization",
        description="Benchmark, every comparison interleaved in one process and reported as ratios of "
        "medians to FP32: one linear layer (MiniLM, BERT-base and ViT-B shapes at M = 1, 16, 128, 4096 "
        "tokens), the MiniLM encoder end to end (one short query; 512 sentences in batches of 64), and "
        "the checkpoint's storage. Example: python -m ternlib bench --quick",
    )
    b.add_argument("--quick", action="store_true", help="two layer shapes and a short encoder run (under a minute)")
    b.add_argument("--checkpoint", help="ternary checkpoint for the encoder part (default: the book's best model; "
                   "if absent, the FP32 model ternarized by round-to-nearest: same speed)")
    b.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    b.add_argument("--out", help="write the results as JSON here")
    b.add_argument("--plot", help="write a PNG of the ratios here")
    b.set_defaults(func=_bench)

    a = sub.add_parser(
        "ablate",
        help="distill short runs that change one thing at a time (beta, scales, losses, steps)",
        description="Ablation of the distillation recipe: each variant changes one setting of the base "
        "recipe, trains a fresh ternary student for --steps steps and evaluates it (fast suite) against "
        "the FP32 teacher. Rows are appended to OUT as they finish; rerun to continue. "
        "Example: python -m ternlib ablate --out ablation.json --axes beta losses",
    )
    a.add_argument("--out", required=True, help="JSON file of results (appended to, resumable)")
    a.add_argument("--axes", nargs="*", choices=["beta", "granularity", "losses", "steps"], help="default: all")
    a.add_argument("--recipe", default="paper", help="base recipe")
    a.add_argument("--steps", type=int, default=100, help="steps per variant")
    a.add_argument("--batch-size", type=int, default=32)
    a.add_argument("--full-eval", action="store_true", help="evaluate on the full suite (slow)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a.set_defaults(func=_ablate)

    q = sub.add_parser(
        "quantize",
        help="ternarize a sentence-transformers model by round-to-nearest (no training) and save it",
        description="Replace every Linear of a sentence-transformers model by a ternary one "
        "(round-to-nearest, no distillation) and save it packed.",
    )
    q.add_argument("--model", default=None, help="hub id or local path (default: all-MiniLM-L6-v2)")
    q.add_argument("--out", required=True, help="checkpoint directory to write")
    q.add_argument("--int8-embeddings", action="store_true", help="also store embedding tables as int8")
    _ternary_args(q)
    q.set_defaults(func=_quantize)

    s = sub.add_parser("storage", help="print the storage report of a saved checkpoint")
    s.add_argument("path", help="checkpoint directory written by ternlib.save")
    s.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    s.set_defaults(func=_storage)

    n = sub.add_parser(
        "ann",
        help="encode the WordNet corpus, build FAISS indexes (Flat, IVF, HNSW, PQ, binary) and compare them",
        description="Approximate nearest-neighbour search on FP32 and ternary embeddings. Encodes the "
        "WordNet retrieval corpus (117,659 synset definitions; 48,224 example sentences as queries) with "
        "each encoder (embeddings are cached under ~/.cache/ternlib/ann, so the second run is fast), "
        "builds each FAISS index, and prints one row per encoder and index: nDCG@10 on the task, "
        "recall@k against exact search (same encoder, and the FP32 model's exact neighbours), queries "
        "per second (one at a time and batched), bytes per vector, build time, and the end-to-end "
        "latency of one query (encode + search) against FP32 + exact search, timed side by side. "
        "Needs faiss-cpu (pip install faiss-cpu). "
        "Example: python -m ternlib ann --encoder fp32 book/artifacts/text/best/model --sample 200",
    )
    n.add_argument("--encoder", nargs="+", default=["fp32"], metavar="fp32|PATH",
                   help="encoders to compare: 'fp32' (all-MiniLM-L6-v2) or a ternlib checkpoint directory "
                   "(loaded with int8 activations, the fast CPU kernels); default: fp32")
    n.add_argument("--indexes", nargs="+", default=["Flat", "IVF-Flat", "HNSW", "IVF-PQ+refine", "SQ8",
                                                    "Binary+rescore", "Binary+float-rescore"],
                   metavar="NAME", help="index presets (default: all): Flat IVF-Flat HNSW IVF-PQ+refine SQ8 "
                   "Binary+rescore Binary+float-rescore; Flat (exact) is always added as the ground truth")
    n.add_argument("--sample", type=int, help="use only this many queries (seeded sample) and about 10x as many "
                   "documents (the full set is slow: ~20 min of encoding on 2 CPU cores, once)")
    n.add_argument("--docs", type=int, help="with --sample: about this many documents")
    n.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    n.add_argument("--seed", type=int, default=0, help="seed of the sample")
    n.add_argument("--out", help="write the results as JSON here")
    n.add_argument("--cache-dir", default=None, help="embedding cache (default ~/.cache/ternlib/ann)")
    n.add_argument("--no-cache", action="store_true", help="encode again, do not read or write the cache")
    n.add_argument("--threads", type=int, default=0, help="torch and FAISS CPU threads (0: default)")
    n.add_argument("--quiet", action="store_true", help="no progress bars")
    n.set_defaults(func=_ann)

    v = sub.add_parser(
        "vision",
        help="train a small ViT on Fashion-MNIST, ternarize and self-distill it, and probe both (chapter 5)",
        description="The image experiment, offline: trains a small ViT teacher on the Fashion-MNIST training "
        "images (or reuses OUT/teacher, or --teacher), ternarizes a copy (round-to-nearest) and self-distills "
        "one per recipe on the training images without labels (paper: last-hidden-state MSE, beta 2; best: "
        "+ [CLS] cosine and relational terms, beta 1.5), then freezes every encoder and trains only linear "
        "and k-NN probes on their [CLS] embeddings; reports probe accuracy, storage and latency. "
        "Writes OUT/teacher, OUT/<recipe>/model (ternlib checkpoints), OUT/results.json. "
        "Needs Fashion-MNIST (sudo apt-get install dataset-fashion-mnist). About 20 minutes on 2 CPU cores; "
        "--fast: a few minutes on samples. Example: python -m ternlib vision --out runs/image",
    )
    v.add_argument("--out", required=True, help="output directory")
    v.add_argument("--fast", action="store_true", help="small samples and few steps (CI)")
    v.add_argument("--teacher", help="a saved teacher directory to use instead of OUT/teacher")
    v.add_argument("--teacher-epochs", type=float, help="epochs of teacher training (default 3)")
    v.add_argument("--steps", type=int, help="distillation steps per recipe (default 600)")
    v.add_argument("--train-images", type=int, help="use a seeded sample of this many training images")
    v.add_argument("--recipes", nargs="+", choices=["paper", "best"], help="default: paper best")
    v.add_argument("--data", help="directory of the Fashion-MNIST IDX files (default: the Debian package's)")
    v.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    v.add_argument("--quiet", action="store_true", help="no progress bars")
    v.set_defaults(func=_vision)

    args = parser.parse_args(argv)
    if getattr(args, "threads", 0):  # every command with --threads: torch's CPU threads (0 keeps torch's default)
        import torch

        torch.set_num_threads(args.threads)
    args.argv = list(sys.argv[1:] if argv is None else argv)[1:]
    if getattr(args, "command", None) == "ann" and args.cache_dir is None:
        from .ann import CACHE_DIR

        args.cache_dir = CACHE_DIR
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""``ternlib distill``: ternarize a sentence-transformers model and train it by self-distillation."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..distill import RECIPES, DistillConfig
from .common import add_ternary_options, device, ternary_config
from .options import add_dataclass_options, add_threads, dataclass_values

NAME = "distill"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        NAME,
        help="ternarize a sentence-transformers model and train it by self-distillation",
        description="Self-taught distillation: the frozen full-precision model (teacher) teaches its "
        "ternary copy (student) on unlabelled text. Writes OUT/model (the packed ternary model, load it "
        "with ternlib.load), OUT/training/step_*/ (resumable checkpoints: run the same command again "
        "after an interruption and it continues where it stopped), OUT/history.json and OUT/run.json. "
        "Options left unset take the recipe's value. "
        "Example: ternlib distill --recipe best --steps 600 --bf16 --out runs/best (CPU), "
        "ternlib distill --recipe large-batch --int8-embeddings --out runs/large (GPU), "
        "ternlib distill --recipe large-batch-cpu --int8-embeddings --out runs/large_cpu (CPU, retrieval)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--recipe", default="best", choices=sorted(RECIPES),
                   help="named recipe: 'paper' (hidden-state MSE), 'best' (CPU: + pooled and relational terms), "
                   "'large-batch' (GPU: best + contrastive, 256 sentences x 1,200 steps), 'large-batch-cpu' (the same "
                   "batches on a CPU in micro-batches of 32, 540 steps: an hour on 2 cores) or 'queue-kl' (CPU, "
                   "under an hour on 2 cores: best + similarity KL over a 4,096-sentence queue, 2,500 steps)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: a CUDA GPU when there is one)")
    p.add_argument("--model", default=None, help="teacher: hub id or local path (default: all-MiniLM-L6-v2)")
    p.add_argument("--stop-after", type=int, help="stop after this many steps (resume later)")
    p.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints in OUT/training")
    p.add_argument("--cache-teacher", action="store_true",
                   help="keep the frozen teacher's outputs for each sentence in memory the first time it is in a "
                   "batch and reuse them (no teacher pass after the first epoch; ~0.85 GB for Brown with MiniLM)")
    p.add_argument("--keep-checkpoints", type=int, default=2, metavar="N",
                   help="keep the newest N checkpoints in OUT/training, about 270 MB each for MiniLM (0: all; "
                   "default 2)")
    p.add_argument("--train-sentences", type=int, help="sample this many Brown training sentences (default: all)")
    p.add_argument("--text-file", help="train on this UTF-8 file instead (one sentence per line)")
    p.add_argument("--int8-embeddings", action="store_true", help="store the token embeddings as int8 in OUT/model")
    add_threads(p)
    add_dataclass_options(p, DistillConfig)
    add_ternary_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import save
    from ..data.corpus import read_text_file, training_sentences
    from ..distill import distill, make_student, recipe
    from ..embedding import Int8EmbeddingConfig
    from ..models import load_text_encoder
    from ..quantize import quantize_
    from ..storage import storage_report

    tconfig, dconfig = recipe(args.recipe, **dataclass_values(args, DistillConfig))
    tconfig = ternary_config(args, tconfig)
    texts = read_text_file(args.text_file) if args.text_file else training_sentences(args.train_sentences,
                                                                                     seed=args.seed or 0)
    out = Path(args.out)
    print(f"recipe {args.recipe}: {tconfig}\n{dconfig}\ntraining text: {len(texts):,} items", flush=True)
    dev = device(args.device)
    print(f"device: {dev}", flush=True)
    teacher = load_text_encoder(args.model, device=dev)
    student = make_student(teacher, tconfig)
    res = distill(teacher, student, texts, dconfig, output_dir=out / "training", resume=not args.no_resume,
                  stop_after=args.stop_after, keep_checkpoints=args.keep_checkpoints,
                  cache_teacher=args.cache_teacher)
    done = res.history[-1]["step"] if res.history else 0
    (out / "history.json").write_text(json.dumps(res.history, indent=1))
    if done < dconfig.steps:
        print(f"stopped at step {done} of {dconfig.steps}; run the command again without --stop-after to resume")
        return 0
    if args.int8_embeddings:
        quantize_(student, Int8EmbeddingConfig(min_rows=1000))
    save(student, out / "model")
    run_info = {"recipe": args.recipe, "ternary_config": tconfig.to_dict(), "distill_config": dconfig.to_dict(),
                "train_items": len(texts), "training_seconds": round(res.seconds, 1),
                "command": "python -m ternlib " + " ".join(sys.argv[1:])}
    (out / "run.json").write_text(json.dumps(run_info, indent=1))
    print(storage_report(student))
    print(f"\nsaved the packed ternary model to {out / 'model'} ({res.seconds / 60:.1f} min)")
    return 0

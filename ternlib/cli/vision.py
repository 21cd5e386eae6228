"""``ternlib vision``: the image experiment (ViT teacher on Fashion-MNIST, ternary self-distillation, probes)."""
from __future__ import annotations

import argparse
import dataclasses

from ..vision.experiment import ImageExperimentConfig
from .options import add_dataclass_options, add_threads, dataclass_values

NAME = "vision"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        NAME,
        help="train a small ViT on Fashion-MNIST, ternarize and self-distill it, and probe both",
        description="The image experiment, offline: trains a small ViT teacher on the Fashion-MNIST training "
        "images (or reuses OUT/teacher, or --teacher), ternarizes a copy (round-to-nearest) and self-distills "
        "one per recipe on the training images without labels (paper: last-hidden-state MSE, beta 2; best: "
        "+ [CLS] cosine and relational terms, beta 1.5), then freezes every encoder and trains only linear "
        "and k-NN probes on their [CLS] embeddings; reports probe accuracy, storage and latency. "
        "Writes OUT/teacher, OUT/<recipe>/model (ternlib checkpoints), OUT/results.json. "
        "Needs Fashion-MNIST (sudo apt-get install dataset-fashion-mnist). About 20 minutes on 2 CPU cores; "
        "--fast: a few minutes on samples. Example: ternlib vision --out runs/image",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--fast", action="store_true", help="small samples and few steps (CI): ImageExperimentConfig.fast()")
    p.add_argument("--teacher", help="a saved teacher directory to use instead of OUT/teacher")
    p.add_argument("--data", help="directory of the Fashion-MNIST IDX files (default: the Debian package's)")
    add_threads(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_dataclass_options(p, ImageExperimentConfig, aliases={"distill_steps": ["--steps"],
                                                             "n_train": ["--train-images"]})
    return p


def run(args: argparse.Namespace) -> int:
    from ..vision.experiment import results_table, run_experiment

    cfg = ImageExperimentConfig.fast() if args.fast else ImageExperimentConfig()
    cfg = dataclasses.replace(cfg, **dataclass_values(args, ImageExperimentConfig))
    res = run_experiment(args.out, cfg, teacher_dir=args.teacher, data_root=args.data, progress=not args.quiet)
    print(results_table(res))
    return 0

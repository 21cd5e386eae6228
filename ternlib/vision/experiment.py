"""The image experiment (``python -m ternlib vision``): teacher -> round-to-nearest and self-distilled
ternary encoders -> linear and k-NN probes, storage and latency, written to one results.json."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from .encoders import classifier_accuracy, embed_images, hidden_mse, require_transformers, train_teacher
from .images import ImageSet, ImageTransform, PixelCollate, load_fashion_mnist

# Distillation recipes for images: the paper's (absmean beta=2, per tensor, last-hidden-state MSE,
# lr 1e-3 as its ViT run) and the text chapter's best losses on the [CLS] embedding.
IMAGE_RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"beta": 2.0, "losses": {"hidden_mse": 1.0}},
    "best": {"beta": 1.5, "losses": {"hidden_mse": 1.0, "pooled_cos": 1.0, "relational": 1.0}},
}


@dataclass
class ImageExperimentConfig:
    """Sizes and steps of :func:`run_experiment`; ``fast()`` is the CI-sized version.

    Args:
        n_train: a seeded sample of this many training images for the teacher and the distillation
            (None: all 60,000).
        n_test: test images for the probes (None: all 10,000).
        n_probe_train: training images whose features fit the probes (None: n_train).
        teacher_epochs: epochs of teacher training.
        distill_steps: distillation steps per recipe.
        distill_batch: unlabelled images per distillation step.
        distill_lr: peak learning rate of the distillation.
        recipes: distillation recipes to run (paper: hidden-state MSE, beta 2; best: + [CLS] cosine and
            relational, beta 1.5).
        latency_repeats: timed calls per encoder and batch size.
        seed: seed of the samples, the teacher and the distillation.
    """

    n_train: int | None = None  # training images for teacher and distillation (None: all 60,000)
    n_test: int | None = None  # test images for the probes (None: all 10,000)
    n_probe_train: int | None = None  # training images whose features fit the probes (None: n_train)
    teacher_epochs: float = 4.0
    distill_steps: int = 600
    distill_batch: int = 128
    distill_lr: float = 1e-3
    recipes: tuple[Literal["paper", "best"], ...] = ("paper", "best")
    latency_repeats: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [r for r in self.recipes if r not in IMAGE_RECIPES]
        if unknown or not self.recipes:
            raise ValueError(f"unknown or no recipes {list(self.recipes)}; known: {sorted(IMAGE_RECIPES)}")
        for name in ("distill_steps", "distill_batch", "latency_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"ImageExperimentConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.teacher_epochs <= 0:
            raise ValueError(f"ImageExperimentConfig.teacher_epochs must be > 0, got {self.teacher_epochs}")

    @classmethod
    def fast(cls) -> "ImageExperimentConfig":
        return cls(n_train=2000, n_test=500, n_probe_train=1000, teacher_epochs=0.2, distill_steps=30,
                   distill_batch=32, recipes=("best",), latency_repeats=3)


def features(encoders: dict[str, nn.Module], train: ImageSet, test: ImageSet, progress: bool) -> dict[str, tuple]:
    return {name: (embed_images(enc, train, progress=progress), embed_images(enc, test))
            for name, enc in encoders.items()}


def latency(encoders: dict[str, nn.Module], images: torch.Tensor, batch_sizes=(1, 256), repeats: int = 20) -> dict:
    """Median seconds per call of each encoder at each batch size, interleaved, and ratios to the first."""
    from ..bench import interleaved

    out: dict[str, Any] = {}
    ref = next(iter(encoders))
    for b in batch_sizes:
        x = ImageTransform.for_model(encoders[ref])(images[:b])

        def call(enc):
            return lambda: enc(pixel_values=x)
        with torch.inference_mode():
            med = interleaved({n: call(e) for n, e in encoders.items()}, repeats=repeats, warmup=2, min_seconds=0.5)
        out[str(b)] = {"ms": {n: 1e3 * t for n, t in med.items()}, "ratio": {n: t / med[ref] for n, t in med.items()}}
    return out


def run_experiment(out_dir: str | os.PathLike, config: ImageExperimentConfig | None = None,
                   teacher_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
                   progress: bool = True, log=print) -> dict[str, Any]:
    """Teacher -> round-to-nearest ternary and self-distilled ternary encoders -> probes, storage, latency.

    Writes to ``out_dir``: ``teacher/`` (the FP32 ViT classifier, safetensors + config.json;
    reused when present, or taken from ``teacher_dir``), ``<recipe>/model`` (ternlib checkpoints
    of the distilled encoders), ``<recipe>/history.json`` and ``results.json``. Returns the results.
    """
    from ..checkpoint import load, save
    from ..config import TernaryConfig
    from ..distill import DistillConfig, distill, make_student
    from ..quantize import freeze_
    from ..storage import storage_report
    from .probe import knn_probe, linear_probe

    cfg = config or ImageExperimentConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tf = require_transformers()
    t0 = time.perf_counter()
    train = load_fashion_mnist("train", data_root).subset(cfg.n_train, cfg.seed)
    test = load_fashion_mnist("test", data_root).subset(cfg.n_test, cfg.seed)
    probe_train = train.subset(cfg.n_probe_train, cfg.seed + 1)
    res: dict[str, Any] = {"config": dataclasses.asdict(cfg), "data": {"train": len(train), "test": len(test),
                                                                       "probe_train": len(probe_train)}}
    # 1. the FP32 teacher
    tdir = Path(teacher_dir) if teacher_dir is not None else out / "teacher"
    if (tdir / "config.json").exists():
        log(f"teacher: loading {tdir}")
        from ..models import quiet_hf

        with quiet_hf():
            clf = tf.ViTForImageClassification.from_pretrained(str(tdir)).eval()
        tmeta = json.loads((tdir / "teacher.json").read_text()) if (tdir / "teacher.json").exists() else {}
    else:
        log(f"teacher: training on {len(train):,} images for {cfg.teacher_epochs} epochs")
        ts = time.perf_counter()
        clf, thist = train_teacher(train, epochs=cfg.teacher_epochs, seed=cfg.seed, progress=progress)
        tmeta = {"history": thist, "seconds": round(time.perf_counter() - ts, 1), "epochs": cfg.teacher_epochs,
                 "train_images": len(train)}
        clf.save_pretrained(str(tdir), safe_serialization=True)
        (tdir / "teacher.json").write_text(json.dumps(tmeta, indent=1) + "\n")
    teacher = clf.vit.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    res["teacher"] = {**{k: v for k, v in tmeta.items() if k != "history"},
                      "test_accuracy": classifier_accuracy(clf, test),
                      "params": sum(p.numel() for p in teacher.parameters())}
    log(f"teacher: its own head scores {res['teacher']['test_accuracy']:.4f} on {len(test):,} test images")

    # 2. ternary encoders: round-to-nearest (no training) and one distilled per recipe
    encoders: dict[str, nn.Module] = {"FP32": teacher}
    rtn = make_student(teacher, TernaryConfig(beta=IMAGE_RECIPES["best"]["beta"]))
    encoders["ternary RTN"] = freeze_(rtn)
    res["distill"] = {}
    for name in cfg.recipes:
        r = IMAGE_RECIPES[name]
        student = make_student(teacher, TernaryConfig(beta=r["beta"]))
        dcfg = DistillConfig(steps=cfg.distill_steps, batch_size=cfg.distill_batch, lr=cfg.distill_lr,
                             losses=r["losses"], pooling="cls", seed=cfg.seed, log_every=10)
        log(f"distill[{name}]: {dcfg.steps} steps x {dcfg.batch_size} unlabelled images, losses {r['losses']}")
        result = distill(teacher, student, range(len(train)), dcfg,
                         collate=PixelCollate(train, ImageTransform.for_model(teacher), augment=False),
                         progress=progress)
        path = save(result.student, out / name / "model")
        (out / name / "history.json").write_text(json.dumps(result.history, indent=1) + "\n")
        res["distill"][name] = {"seconds": round(result.seconds, 1), "beta": r["beta"], "losses": r["losses"],
                                "steps": dcfg.steps, "batch_size": dcfg.batch_size, "lr": dcfg.lr}
        encoders[f"ternary {name}"] = load(path)  # what a reader gets back: frozen, packed, fast kernels
    res["hidden_mse"] = {n: hidden_mse(e, teacher, test) for n, e in encoders.items() if n != "FP32"}

    # 3. probes on frozen [CLS] embeddings (and raw pixels as the floor)
    log(f"probes: {len(encoders)} encoders, {len(probe_train):,} train / {len(test):,} test images")
    feats = features(encoders, probe_train, test, progress)
    flat = lambda s: (s.images.reshape(len(s), -1).float() / 255).numpy()  # noqa: E731
    feats["pixels"] = (flat(probe_train), flat(test))
    res["probes"] = {}
    for name, (xa, xb) in feats.items():
        ya, yb = probe_train.labels.numpy(), test.labels.numpy()
        res["probes"][name] = {"linear": linear_probe(xa, ya, xb, yb)["accuracy"],
                               "knn": knn_probe(xa, ya, xb, yb)["accuracy"]}
        log(f"  {name:18s} linear {res['probes'][name]['linear']:.4f}  k-NN {res['probes'][name]['knn']:.4f}")

    # 4. storage and latency of the FP32 teacher and the best ternary encoder (as loaded)
    best = f"ternary {cfg.recipes[-1]}"
    res["storage"] = {"FP32": storage_report(teacher).to_dict(), best: storage_report(encoders[best]).to_dict()}
    res["latency"] = latency({"FP32": teacher, best: encoders[best]}, test.images, repeats=cfg.latency_repeats)
    res["threads"] = torch.get_num_threads()
    res["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    log(f"done in {res['seconds']:.0f} s: {out / 'results.json'}")
    return res


def results_table(res: dict[str, Any]) -> str:
    """The probe table of :func:`run_experiment`'s results as Markdown (accuracy in %, and the
    points lost against FP32)."""
    fp = res["probes"]["FP32"]
    lines = ["| encoder | linear probe | vs FP32 | k-NN probe | vs FP32 |", "|---|---|---|---|---|"]
    for name, p in res["probes"].items():
        lines.append(f"| {name} | {100 * p['linear']:.2f} | {100 * (p['linear'] - fp['linear']):+.2f} | "
                     f"{100 * p['knn']:.2f} | {100 * (p['knn'] - fp['knn']):+.2f} |")
    return "\n".join(lines)

"""Ternary image encoders: ViT teachers, self-distillation on unlabelled images, probes.

The offline path of the book (no pretrained ViT is installable here): train a small ViT on
Fashion-MNIST (:func:`train_teacher`), ternarize a copy and self-distill it from the frozen
teacher on the training images without their labels, then freeze both encoders and compare
them by linear and k-NN probes on their [CLS] embeddings (:func:`run_experiment`, or
``python -m ternlib vision``). The online path runs the paper's setup through the same code:
``load_image_encoder("google/vit-base-patch16-224")`` and CIFAR-10/100 from torchvision.

Example:
    >>> import torch
    >>> from ternlib import quantize_, TernaryConfig
    >>> from ternlib.vision import tiny_vit_config, embed_images
    >>> from transformers import ViTModel
    >>> enc = quantize_(ViTModel(tiny_vit_config(hidden=32, layers=1, heads=2, mlp=64), add_pooling_layer=False))
    >>> embed_images(enc, torch.zeros(3, 1, 28, 28, dtype=torch.uint8)).shape   # (N, hidden) [CLS] embeddings
    (3, 32)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .images import (FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, ImageSet, ImageTransform,
                     PixelCollate, load_fashion_mnist)

DEFAULT_IMAGE_MODEL = "google/vit-base-patch16-224"  # the paper's image encoder (online)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("ternlib.vision needs transformers: pip install transformers") from None
    return transformers


def tiny_vit_config(image_size: int = 28, patch_size: int = 7, channels: int = 1, hidden: int = 128,
                    layers: int = 6, heads: int = 4, mlp: int = 512, classes: tuple[str, ...] = FASHION_MNIST_CLASSES,
                    mean: tuple[float, ...] = FASHION_MNIST_MEAN, std: tuple[float, ...] = FASHION_MNIST_STD):
    """A small transformers ``ViTConfig`` for 28x28 grey images: 4x4 patches of 7x7 pixels + [CLS]
    = 17 tokens, ``layers`` blocks of width ``hidden``. The image normalization travels in the
    config (``image_mean`` / ``image_std``), so a saved encoder knows its own preprocessing."""
    if hidden % heads:
        raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
    if image_size % patch_size:
        raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
    return _transformers().ViTConfig(
        image_size=image_size, patch_size=patch_size, num_channels=channels, hidden_size=hidden,
        num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=mlp,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, qkv_bias=True,
        num_labels=len(classes), id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)},
        image_mean=list(mean), image_std=list(std))


def load_image_encoder(name_or_path: str | os.PathLike = DEFAULT_IMAGE_MODEL, device: str = "cpu") -> nn.Module:
    """A ViT encoder (transformers ``ViTModel`` without pooler) for a hub id, a local
    transformers directory (e.g. a teacher saved by :func:`run_experiment`) or a ternlib checkpoint.

    The image normalization of hub models (``image_mean`` / ``image_std`` of their image
    processor) is copied into the model's config so :class:`ImageTransform.for_model` finds it.
    """
    path = Path(name_or_path).expanduser()
    if (path / "ternlib.json").exists():
        from .checkpoint import load

        return load(path, device=device)
    tf = _transformers()
    try:
        cfg = tf.AutoConfig.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as e:
        raise OSError(
            f"could not load the image encoder {str(name_or_path)!r}: it is not a local directory and the model hub "
            f"is unreachable or does not know it ({e.__class__.__name__}). Offline, train a small teacher first: "
            f"python -m ternlib vision --out runs/image"
        ) from None
    if cfg.model_type != "vit":
        raise ValueError(f"{name_or_path} is a {cfg.model_type!r} model; load_image_encoder supports ViT")
    from .models import quiet_hf

    with quiet_hf():
        model = tf.ViTModel.from_pretrained(str(name_or_path), add_pooling_layer=False)
    if getattr(model.config, "image_mean", None) is None:
        try:
            proc = tf.AutoImageProcessor.from_pretrained(str(name_or_path))
            model.config.image_mean, model.config.image_std = list(proc.image_mean), list(proc.image_std)
        except (OSError, ValueError, AttributeError):
            pass  # ImageTransform.for_model falls back to 0.5 / 0.5, the google/vit-* values
    return model.to(device).eval()


# ---------------------------------------------------------------------------- teacher
def train_teacher(train: ImageSet, config=None, epochs: float = 4, batch_size: int = 128, lr: float = 1e-3,
                  weight_decay: float = 0.0, label_smoothing: float = 0.0, warmup_ratio: float = 0.05,
                  augment: bool = False, seed: int = 0, progress: bool = True) -> tuple[nn.Module, list[dict]]:
    """Train a ``ViTForImageClassification`` (a ViT encoder + a linear head on [CLS]) on labelled
    images with AdamW, warm-up + cosine decay, optionally label smoothing and random shifts and flips
    (``augment``; in 300-step probes on Fashion-MNIST shifts of 2 pixels cost 9 points of accuracy,
    lr 1e-3 beat 3e-4 by 2 points).

    Returns the classifier (eval mode; ``model.vit`` is the encoder to ternarize) and the history.
    """
    tf = _transformers()
    torch.manual_seed(seed)
    config = config or tiny_vit_config(classes=train.classes)
    model = tf.ViTForImageClassification(config)
    transform = ImageTransform.for_model(model)
    steps = max(1, int(epochs * len(train) / batch_size))
    warmup = max(1, int(warmup_ratio * steps))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="teacher", unit="step")
    g = torch.Generator().manual_seed(seed)
    order, pos, running = torch.randperm(len(train), generator=g), 0, []
    model.train()
    for step in range(steps):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(train), generator=g), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        x = transform(train.images[idx], augment=augment)  # (B, C, S, S)
        y = train.labels[idx]
        logits = model(pixel_values=x).logits  # (B, classes)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        lr_now = lr * ((step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))
        for grp in opt.param_groups:
            grp["lr"] = lr_now
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append((float(loss.detach()), float((logits.argmax(1) == y).float().mean())))
        if (step + 1) % 25 == 0 or step + 1 == steps:
            history.append({"step": step + 1, "loss": float(np.mean([r[0] for r in running])),
                            "train_accuracy": float(np.mean([r[1] for r in running])), "lr": lr_now})
            running = []
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    if bar is not None:
        bar.close()
    return model.eval(), history


@torch.inference_mode()
def classifier_accuracy(model: nn.Module, test: ImageSet, batch_size: int = 512) -> float:
    """Accuracy of a ``ViTForImageClassification`` (its own head) on ``test``."""
    transform = ImageTransform.for_model(model)
    model.eval()
    correct = 0
    for s in range(0, len(test), batch_size):
        logits = model(pixel_values=transform(test.images[s:s + batch_size])).logits
        correct += int((logits.argmax(1) == test.labels[s:s + batch_size]).sum())
    return correct / len(test)


# ---------------------------------------------------------------------------- embeddings
@torch.inference_mode()
def embed_images(encoder: nn.Module, images: ImageSet | torch.Tensor, transform: ImageTransform | None = None,
                 batch_size: int = 256, pooling: str = "cls", progress: bool = False) -> np.ndarray:
    """Frozen image embeddings ``(N, hidden)`` float32: the [CLS] token of the last hidden state
    (``pooling="cls"``, what ViT's head reads) or the mean of all tokens (``"mean"``)."""
    if pooling not in ("cls", "mean"):
        raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
    imgs = images.images if isinstance(images, ImageSet) else images
    transform = transform or ImageTransform.for_model(encoder)
    encoder.eval()
    out = []
    starts = range(0, len(imgs), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="embed", unit="batch")
    device = next(encoder.parameters(), torch.empty(0)).device
    for s in starts:
        hidden = encoder(pixel_values=transform(imgs[s:s + batch_size]).to(device)).last_hidden_state  # (B, T, H)
        out.append((hidden[:, 0] if pooling == "cls" else hidden.mean(1)).float().cpu())
    return torch.cat(out).numpy()


@torch.inference_mode()
def hidden_mse(student: nn.Module, teacher: nn.Module, images: ImageSet, batch_size: int = 256) -> float:
    """Mean squared error between the student's and the teacher's last hidden states on ``images``
    (the paper's distillation loss, measured on held-out images)."""
    transform = ImageTransform.for_model(teacher)
    total, n = 0.0, 0
    for s in range(0, len(images), batch_size):
        x = transform(images.images[s:s + batch_size])
        a = student(pixel_values=x).last_hidden_state
        b = teacher(pixel_values=x).last_hidden_state
        total += float((a - b).pow(2).mean()) * len(x)
        n += len(x)
    return total / n


# ---------------------------------------------------------------------------- the experiment
# Distillation recipes for images: the paper's (absmean beta=2, per tensor, last-hidden-state MSE,
# lr 1e-3 as its ViT run) and the text chapter's best losses on the [CLS] embedding.
IMAGE_RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"beta": 2.0, "losses": {"hidden_mse": 1.0}},
    "best": {"beta": 1.5, "losses": {"hidden_mse": 1.0, "pooled_cos": 1.0, "relational": 1.0}},
}


@dataclass
class ImageExperimentConfig:
    """Sizes and steps of :func:`run_experiment`; ``fast()`` is the CI-sized version."""

    n_train: int | None = None  # training images for teacher and distillation (None: all 60,000)
    n_test: int | None = None  # test images for the probes (None: all 10,000)
    n_probe_train: int | None = None  # training images whose features fit the probes (None: n_train)
    teacher_epochs: float = 4.0
    distill_steps: int = 600
    distill_batch: int = 128
    distill_lr: float = 1e-3
    recipes: tuple[str, ...] = ("paper", "best")
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


def _features(encoders: dict[str, nn.Module], train: ImageSet, test: ImageSet, progress: bool) -> dict[str, tuple]:
    return {name: (embed_images(enc, train, progress=progress), embed_images(enc, test)) for name, enc in encoders.items()}


def latency(encoders: dict[str, nn.Module], images: torch.Tensor, batch_sizes=(1, 256), repeats: int = 20) -> dict:
    """Median seconds per call of each encoder at each batch size, interleaved, and ratios to the first."""
    from .bench import interleaved

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
    from . import TernaryConfig, freeze_, load, save, storage_report
    from .distill import DistillConfig, distill, make_student
    from .probe import knn_probe, linear_probe

    cfg = config or ImageExperimentConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tf = _transformers()
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
        from .models import quiet_hf

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
                      "test_accuracy": classifier_accuracy(clf, test), "params": sum(p.numel() for p in teacher.parameters())}
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
                         collate=PixelCollate(train, ImageTransform.for_model(teacher), augment=False), progress=progress)
        path = save(result.student, out / name / "model")
        (out / name / "history.json").write_text(json.dumps(result.history, indent=1) + "\n")
        res["distill"][name] = {"seconds": round(result.seconds, 1), "beta": r["beta"], "losses": r["losses"],
                                "steps": dcfg.steps, "batch_size": dcfg.batch_size, "lr": dcfg.lr}
        encoders[f"ternary {name}"] = load(path)  # what a reader gets back: frozen, packed, fast kernels
    res["hidden_mse"] = {n: hidden_mse(e, teacher, test) for n, e in encoders.items() if n != "FP32"}

    # 3. probes on frozen [CLS] embeddings (and raw pixels as the floor)
    log(f"probes: {len(encoders)} encoders, {len(probe_train):,} train / {len(test):,} test images")
    feats = _features(encoders, probe_train, test, progress)
    flat = lambda s: (s.images.reshape(len(s), -1).float() / 255).numpy()  # noqa: E731
    feats["pixels"] = (flat(probe_train), flat(test))
    res["probes"] = {}
    for name, (xa, xb) in feats.items():
        ya, yb = probe_train.labels.numpy(), test.labels.numpy()
        res["probes"][name] = {"linear": linear_probe(xa, ya, xb, yb)["accuracy"], "knn": knn_probe(xa, ya, xb, yb)["accuracy"]}
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

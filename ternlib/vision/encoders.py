"""ViT encoders: load one (hub id, local directory or ternlib checkpoint), a tiny config for the
offline path, teacher training on labelled images, [CLS] embeddings and the hidden-state gap."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .images import FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, ImageSet, ImageTransform

DEFAULT_IMAGE_MODEL = "google/vit-base-patch16-224"  # the paper's image encoder (online)


def require_transformers():
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
    return require_transformers().ViTConfig(
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
        from ..checkpoint import load

        return load(path, device=device)
    tf = require_transformers()
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
    from ..models import quiet_hf

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
    tf = require_transformers()
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
        lr_now = lr * ((step + 1) / warmup if step < warmup
                       else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))
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

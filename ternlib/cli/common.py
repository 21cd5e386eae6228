"""What several subcommands share: the TernaryConfig options, loading a model or a checkpoint, the device."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import TernaryConfig
from .options import add_dataclass_options, dataclass_values


def add_ternary_options(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """The TernaryConfig fields as options (unset: the recipe's or TernaryConfig's default)."""
    add_dataclass_options(parser, TernaryConfig, exclude=exclude)


def ternary_config(args: argparse.Namespace, base: TernaryConfig | None = None, **extra: Any) -> TernaryConfig:
    """``base`` (default ``TernaryConfig()``) with ``extra`` and then the options given on the command line."""
    kw = {**(base or TernaryConfig()).to_dict(), **{k: v for k, v in extra.items() if v is not None}}
    return TernaryConfig(**{**kw, **dataclass_values(args, TernaryConfig)})


def load_any(path_or_id: str | None, activations: str | None = None):
    """A ternlib checkpoint directory -> ternlib.load; anything else -> the FP32 text encoder."""
    from ..checkpoint import CONFIG_FILE

    if path_or_id and (Path(path_or_id) / CONFIG_FILE).exists():
        from ..checkpoint import load

        return load(path_or_id, activations=activations)
    from ..models import load_text_encoder

    return load_text_encoder(path_or_id)


def device(name: str) -> str:
    """``auto`` -> ``cuda`` where PyTorch sees a GPU, else ``cpu``; a CUDA name without a GPU is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: no CUDA GPU is available to PyTorch here; use --device cpu")
    return name

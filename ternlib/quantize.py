"""quantize_(model, config, filter_fn): the in-place entry point, and freeze_ for inference.

``quantize_`` walks the model, and for a :class:`TernaryConfig` replaces every matching
``nn.Linear`` by a :class:`TernaryLinear` (training state; an ``nn.MultiheadAttention`` is first
rebuilt from Linear layers, :mod:`ternlib.attention`, so its projections become ternary too); for an
:class:`Int8EmbeddingConfig` every matching ``nn.Embedding`` by an :class:`Int8Embedding`. ``freeze_`` then packs every
ternary layer for inference.
"""
from __future__ import annotations

from typing import Callable, Iterator, Union

import torch.nn as nn

from .attention import LinearMultiheadAttention
from .config import TernaryConfig
from .embedding import Int8Embedding, Int8EmbeddingConfig
from .layers import TernaryLinear

FilterFn = Callable[[nn.Module, str], bool]
QuantConfig = Union[TernaryConfig, Int8EmbeddingConfig]

# Module names (last path component) that default_filter leaves in full precision: task heads.
DEFAULT_SKIP = ("classifier", "pre_classifier", "lm_head", "score", "qa_outputs", "head")


def default_filter(module: nn.Module, name: str) -> bool:
    """True for modules the default ``quantize_`` converts: all but task heads (``DEFAULT_SKIP``)."""
    return name.split(".")[-1] not in DEFAULT_SKIP


def set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule called ``name`` (dotted, as ``named_modules`` gives it) by ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def ternary_modules(model: nn.Module) -> Iterator[tuple[str, TernaryLinear]]:
    """``(name, layer)`` for every TernaryLinear in ``model``."""
    for name, m in model.named_modules():
        if isinstance(m, TernaryLinear):
            yield name, m


def quantize_(model: nn.Module, config: QuantConfig | None = None, filter_fn: FilterFn | None = None) -> nn.Module:
    """Convert ``model`` in place and return it.

    Args:
        model: any ``nn.Module`` (transformers model, ``SentenceTransformer``, your own).
        config: :class:`TernaryConfig` (default) converts ``nn.Linear`` layers;
            :class:`Int8EmbeddingConfig` converts ``nn.Embedding`` layers.
        filter_fn: ``filter_fn(module, name) -> bool`` chooses which candidate modules convert;
            default :func:`default_filter` (everything except task heads).

    Calling it again with the same config changes nothing (idempotent); calling it on a model
    already ternarized with a different config is an error (ternarize a fresh copy instead).

    Example:
        >>> import torch
        >>> from ternlib import quantize_, TernaryConfig
        >>> m = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> quantize_(m, TernaryConfig(beta=1.0))
        Sequential(
          (0): TernaryLinear(in_features=8, out_features=8, bias=True, rule=absmean, beta=1.0, granularity=tensor,
                             packing=2bit, frozen=False)
          (1): ReLU()
          (2): TernaryLinear(in_features=8, out_features=2, bias=True, rule=absmean, beta=1.0, granularity=tensor,
                             packing=2bit, frozen=False)
        )
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize_ expects a torch.nn.Module, got {type(model).__name__}")
    config = TernaryConfig() if config is None else config
    if not isinstance(config, (TernaryConfig, Int8EmbeddingConfig)):
        raise TypeError(
            f"config must be a TernaryConfig or an Int8EmbeddingConfig, got {type(config).__name__}"
        )
    if filter_fn is not None and not callable(filter_fn):
        raise TypeError("filter_fn must be callable as filter_fn(module, name) -> bool")
    filter_fn = filter_fn or default_filter
    if isinstance(model, (nn.Linear, nn.Embedding)):
        raise ValueError(
            f"quantize_ replaces layers inside a model, and a top-level {type(model).__name__} has no parent "
            "to swap it in: use TernaryLinear.from_linear(layer), or wrap it in nn.Sequential"
        )

    if isinstance(config, TernaryConfig):
        existing = {n: m.config for n, m in ternary_modules(model)}
        other = {n: c for n, c in existing.items() if c != config}
        if other:
            name, c = next(iter(other.items()))
            raise ValueError(
                f"model is already ternarized with a different config ({name}: {c}); "
                f"quantize_ a fresh copy of the full-precision model instead"
            )
        # nn.MultiheadAttention reads its projection weights directly: rebuild it from Linear layers first
        for name, m in [(n, m) for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]:
            if filter_fn(m, name):
                set_submodule(model, name, LinearMultiheadAttention.from_mha(m))
        targets = [(n, m) for n, m in model.named_modules()
                   if type(m) is nn.Linear or (isinstance(m, nn.Linear) and not isinstance(m, TernaryLinear))]
        targets = [(n, m) for n, m in targets if filter_fn(m, n)]
        if not targets and not existing:
            raise ValueError("quantize_ found no nn.Linear layer to convert (check filter_fn)")
        for name, m in targets:
            set_submodule(model, name, TernaryLinear.from_linear(m, config))
    else:
        targets = [(n, m) for n, m in model.named_modules()
                   if isinstance(m, nn.Embedding) and m.num_embeddings >= config.min_rows and filter_fn(m, n)]
        already = any(isinstance(m, Int8Embedding) for m in model.modules())
        if not targets and not already:
            raise ValueError("quantize_ found no nn.Embedding layer to convert (check filter_fn / min_rows)")
        for name, m in targets:
            set_submodule(model, name, Int8Embedding.from_embedding(m))
    return model


def freeze_(model: nn.Module) -> nn.Module:
    """Pack every TernaryLinear of ``model`` for inference (drops latent weights), set eval mode."""
    layers = list(ternary_modules(model))
    if not layers:
        raise ValueError("freeze_ found no TernaryLinear in the model: call quantize_ first")
    for _, layer in layers:
        layer.freeze()
    return model.eval()

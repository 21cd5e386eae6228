"""``torch.ops.ternlib.ternary_linear``: the kernel dispatch as one PyTorch custom operator.

``torch.compile`` and ``torch.export`` cannot trace into :func:`~ternlib.kernels.ternary_linear`
(it picks a kernel per call in Python and keeps per-weight caches), so while a model is being
compiled a frozen :class:`~ternlib.TernaryLinear` calls this operator instead. To the compiler it
is one opaque node whose output shape is known (its fake implementation); everything around it
(attention, layer norms, GELU, the residual adds) is compiled and fused as usual, and at run time
the operator runs the same dispatch, so each ternary layer computes exactly what it computes in
eager mode (the fused operators around it may round differently).
Eager calls do not go through it (they call the dispatch directly, with no operator overhead).

The kernels' caches (re-packed or unpacked forms of the codes) are kept per packed buffer in a
weak dictionary, so they live as long as the layer's buffer.

Example:
    >>> import torch
    >>> from ternlib import TernaryConfig, TernaryLinear
    >>> layer = TernaryLinear(16, 8, config=TernaryConfig(activations="int8")).freeze()
    >>> compiled = torch.compile(layer, backend="eager")   # backend="inductor" (the default) also fuses
    >>> x = torch.randn(3, 16)
    >>> torch.equal(compiled(x), layer(x))
    True
"""
from __future__ import annotations

import weakref

import torch

from .registry import PackedTernary, ternary_linear

_CACHES: dict[int, tuple[weakref.ref, dict]] = {}  # id(packed buffer) -> (a weak reference to it, its cache)


def _cache_for(packed: torch.Tensor) -> dict:
    """The kernels' cache of this packed buffer, dropped when the buffer is (keyed by identity: tensors do not
    compare as dictionary keys)."""
    key = id(packed)
    entry = _CACHES.get(key)
    if entry is not None and entry[0]() is packed:
        return entry[1]

    def forget(ref, key=key, caches=_CACHES):  # bound now: at interpreter exit the module's globals are None
        if caches.get(key, (None,))[0] is ref:
            del caches[key]

    cache: dict = {}
    _CACHES[key] = (weakref.ref(packed, forget), cache)
    return cache


@torch.library.custom_op("ternlib::ternary_linear", mutates_args=())
def ternary_linear_op(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None,
                      out_features: int, in_features: int, packing: str, group_size: int, activations: str,
                      kernel: str) -> torch.Tensor:
    """``x @ W^T + bias`` for the packed ternary ``W`` (``out_features x in_features``), by the kernel dispatch.

    ``group_size`` 0 means one scale per tensor or per row; ``kernel`` "" lets the dispatch choose.
    """
    w = PackedTernary(packed, scales, (out_features, in_features), packing, group_size or None, activations,
                      _cache_for(packed))
    return ternary_linear(x, w, bias, kernel or None)


@ternary_linear_op.register_fake
def _(x, packed, scales, bias, out_features, in_features, packing, group_size, activations, kernel):
    return x.new_empty((*x.shape[:-1], out_features))  # (..., N), x's dtype, as every kernel returns

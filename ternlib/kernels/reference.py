"""The pure-PyTorch reference kernel: the truth every other kernel is tested against.

Registered as ``reference`` (priority 0, any device). With ``activations="float"`` it computes
``F.linear(x, scale * codes)``; with ``"int8"`` it first quantizes each token (row of ``x``) to
int8 with :func:`~ternlib.activations.quantize_activations` and computes the integer products
exactly, so integer kernels must match it bit for bit.

Example:
    >>> import torch
    >>> from ternlib import TernaryConfig, ternarize
    >>> from ternlib.kernels import PackedTernary, ternary_linear
    >>> cfg = TernaryConfig(activations="int8")
    >>> t = ternarize(torch.randn(8, 16), cfg)
    >>> w = PackedTernary.from_codes(t.codes, t.scales, cfg)
    >>> x = torch.randn(2, 16)
    >>> torch.equal(reference_kernel(x, w, None), ternary_linear(x, w, kernel="reference"))
    True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..activations import quantize_activations
from .registry import PackedTernary, register_kernel


@register_kernel("reference", priority=0)
def reference_kernel(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None) -> torch.Tensor:
    """The truth.

    float activations: unpack, dequantize in float32, cast to ``x.dtype``, ``F.linear``.
    int8 activations: ``acc = q @ codes^T`` computed exactly (float64 holds every such
    integer sum), then ``y = float32(acc) * (sx * sw) + bias`` per scale group, cast to ``x.dtype``.
    """
    if w.activations == "int8":
        return _reference_int8(x, w, bias)
    weight = w.dequantize().to(device=x.device, dtype=x.dtype)  # (N, K)
    b = None if bias is None else bias.to(x.dtype)
    return F.linear(x, weight, b)  # (..., N)


def _reference_int8(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None) -> torch.Tensor:
    n, k = w.shape
    q, sx = quantize_activations(x)  # (..., K) int8, (..., 1) float32
    codes = w.codes().to(x.device, torch.float64)  # (N, K)
    scales = w.scales.to(x.device, torch.float32)  # (1|N, G)
    g = 1 if w.group_size is None else scales.shape[1]
    width = k if w.group_size is None else w.group_size
    y = None
    for j in range(g):  # scale groups of `width` input columns
        cols = slice(j * width, min(k, (j + 1) * width))
        acc = q[..., cols].double() @ codes[:, cols].T  # (..., N), exact integers
        part = acc.float() * (sx * scales[:, j].reshape(-1))  # (..., N)
        y = part if y is None else y + part
    if y is None:  # K == 0
        y = torch.zeros(*x.shape[:-1], n, device=x.device)
    if bias is not None:
        y = y + bias.to(x.device, torch.float32)
    return y.to(x.dtype)

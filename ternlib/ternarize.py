"""Weight -> ternary codes {-1, 0, +1} and scales, and back (the math of every rule).

Shapes: a weight is ``(N, K)`` (out_features, in_features). Scales are always 2-D so they
broadcast over groups of columns:

- ``granularity="tensor"``: scales ``(1, 1)``
- ``granularity="row"``:    scales ``(N, 1)``
- ``granularity="group"``:  scales ``(N, ceil(K / group_size))``; the last group may be short
  and its statistics use only its real columns.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .config import TernaryConfig

TWN_THRESHOLD = 0.7  # Li & Liu (2016): delta = 0.7 * mean|W|


class TernaryWeight(NamedTuple):
    """Ternary codes ``(N, K)`` int8 in {-1, 0, 1} and float32 ``scales`` (see module doc)."""

    codes: torch.Tensor
    scales: torch.Tensor


def _check_weight(weight: torch.Tensor) -> None:
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be floating point, got {weight.dtype}")
    if weight.numel() == 0:
        raise ValueError("weight is empty")
    if not torch.isfinite(weight).all():
        raise ValueError("weight contains NaN or Inf values")


def _group_width(config: TernaryConfig, k: int) -> int:
    if config.granularity == "tensor":
        return k
    if config.granularity == "row":
        return k
    return min(config.group_size, k)


def _grouped(weight: torch.Tensor, config: TernaryConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """View |W| as (G_rows, n_groups, width), zero-padded, with the true count of each group."""
    n, k = weight.shape
    a = weight.abs().float()
    if config.granularity == "tensor":
        a = a.reshape(1, 1, n * k)
        return a, torch.full((1, 1), float(n * k), device=weight.device)
    g = _group_width(config, k)
    n_groups = -(-k // g)
    pad = n_groups * g - k
    if pad:
        a = torch.nn.functional.pad(a, (0, pad))
    a = a.reshape(n, n_groups, g)
    counts = torch.full((n_groups,), float(g), device=weight.device)
    counts[-1] = g - pad
    return a, counts.expand(n, n_groups)


def expand_scales(scales: torch.Tensor, shape: tuple[int, int], group_size: int | None = None) -> torch.Tensor:
    """Broadcast ``scales`` (1,1) / (N,1) / (N,n_groups) to a full ``(N, K)`` tensor."""
    n, k = shape
    if scales.shape[1] == 1:
        return scales.expand(scales.shape[0], 1).expand(n, k) if scales.shape[0] == 1 else scales.expand(n, k)
    if group_size is None:
        raise ValueError("group scales need group_size to expand")
    return scales.repeat_interleave(group_size, dim=1)[:, :k]


def ternarize(weight: torch.Tensor, config: TernaryConfig | None = None) -> TernaryWeight:
    """Quantize a float weight ``(N, K)`` to int8 codes in {-1, 0, 1} and float32 scales.

    The dequantized weight is ``dequantize(codes, scales) == scales * codes`` (per group).

    Example:
        >>> import torch
        >>> from ternlib import TernaryConfig, ternarize, dequantize
        >>> w = torch.tensor([[0.9, -0.05, -1.2, 0.3]])
        >>> t = ternarize(w, TernaryConfig(beta=2.0))   # s = 2 * mean|w| = 1.225
        >>> t.codes.tolist()
        [[1, 0, -1, 0]]
        >>> dequantize(*t).tolist()
        [[1.225000023841858, 0.0, -1.225000023841858, 0.0]]
    """
    config = config or TernaryConfig()
    _check_weight(weight)
    n, k = weight.shape
    a, counts = _grouped(weight, config)  # (R, G, width), (R, G)
    mean_abs = a.sum(-1) / counts  # (R, G)
    if config.rule == "absmean":
        scales = config.beta * mean_abs
        threshold = scales / 2  # clamp(round(W/s), -1, 1) != 0  <=>  |W| > s/2 (round half to even)
        keep = a > threshold.unsqueeze(-1)
    else:  # twn
        threshold = TWN_THRESHOLD * mean_abs
        keep = a > threshold.unsqueeze(-1)
        kept = keep.sum(-1)
        scales = (a * keep).sum(-1) / kept.clamp_min(1)
        # a group with no survivor has codes all zero; give it the threshold as a harmless scale
        scales = torch.where(kept > 0, scales, threshold)
    keep = keep.reshape(a.shape[0], -1)
    if config.granularity == "tensor":
        keep = keep.reshape(n, k)
    else:
        keep = keep[:, :k]
    codes = (torch.sign(weight) * keep).to(torch.int8)
    return TernaryWeight(codes, scales.float())


def dequantize(codes: torch.Tensor, scales: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
    """``scales * codes`` as float32 ``(N, K)``; ``group_size`` is needed for group scales.

    Example:
        >>> import torch
        >>> from ternlib import dequantize
        >>> dequantize(torch.tensor([[1, 0, -1]], dtype=torch.int8), torch.tensor([[0.5]])).tolist()
        [[0.5, 0.0, -0.5]]
    """
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D, got shape {tuple(codes.shape)}")
    if scales.ndim != 2 or scales.shape[0] not in (1, codes.shape[0]):
        raise ValueError(f"scales of shape {tuple(scales.shape)} do not fit codes of shape {tuple(codes.shape)}")
    return codes.float() * expand_scales(scales.float(), tuple(codes.shape), group_size)


def fake_quantize(weight: torch.Tensor, config: TernaryConfig | None = None) -> torch.Tensor:
    """The dequantized ternary weight, in ``weight``'s dtype (no gradient trick)."""
    config = config or TernaryConfig()
    t = ternarize(weight.detach(), config)
    return dequantize(t.codes, t.scales, config.group_size).to(weight.dtype)


def ste_weight(weight: torch.Tensor, config: TernaryConfig) -> torch.Tensor:
    """Straight-through estimator: forward is the ternary weight, backward is the identity.

    ``W + (Q(W) - W).detach()``: the value equals ``Q(W)`` and ``dL/dW`` is passed through
    unchanged to the full-precision latent weight (the paper's rule; the scale gets no gradient).
    """
    return weight + (fake_quantize(weight, config) - weight).detach()


def reconstruction_error(weight: torch.Tensor, config: TernaryConfig | None = None) -> float:
    """Relative Frobenius error ``||W - Q(W)|| / ||W||`` of a ternarization."""
    q = fake_quantize(weight.float(), config)
    return float((weight.float() - q).norm() / weight.float().norm().clamp_min(1e-30))


def sparsity(codes: torch.Tensor) -> float:
    """Fraction of zero codes."""
    return float((codes == 0).float().mean())

"""Integer-weight baselines for ternary: round-to-nearest intN with group scales, and GPTQ.

The paper this library follows compares its ternary model with low-bit integer weights: int8, int4 and
int2 by round-to-nearest (RTN) with a scale and zero point per group of ``g`` input columns, and GPTQ
(Frantar et al., 2023) at 2 bits with ``g = 16``, which beat its ternary model. This module makes those
baselines for any model's ``nn.Linear`` layers, as *simulated* quantization: each weight is replaced by
its dequantized value (the speed of real int4/int2 kernels is not the point here, their quality is).

* :func:`quantize_weight` is the quantizer (asymmetric min-max per group, as GPTQ's reference code uses).
* :func:`gptq_weight` is GPTQ for one matrix: quantize the columns left to right and push each column's
  rounding error onto the columns not yet quantized, weighted by the inverse Hessian ``H = 2 X^T X`` of the
  layer's inputs, so the layer's *output* error stays small (the blocked, Cholesky form of the paper).
* :func:`int_quantize_` applies either to a whole model in place; GPTQ runs layer by layer ("true
  sequential"): each layer's inputs are recorded on calibration data with all earlier layers already
  quantized.
* :func:`bits_per_weight` is the storage cost: ``bits + (16 + bits) / g`` (an fp16 scale and a
  ``bits``-bit zero point per group), so int2 with ``g = 16`` costs 3.125 bits, more than ternary's 2.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(64, 8)
    >>> w = layer.weight.detach().clone()
    >>> report = int_quantize_(layer, IntConfig(bits=4, group_size=16), progress=False)
    >>> len(torch.unique(layer.weight[0, :16]))  <= 16     # 4 bits: at most 16 levels per group
    True
    >>> round(bits_per_weight(IntConfig(bits=2, group_size=16), 64), 3)
    3.125
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Literal

import torch
import torch.nn as nn

from .quantize import FilterFn, default_filter

__all__ = ["IntConfig", "bits_per_weight", "gptq_weight", "int_quantize_", "mean_bits", "quantize_weight"]


@dataclass(frozen=True)
class IntConfig:
    """How to quantize weights to integers.

    Args:
        bits: bits per weight, 2 to 8.
        group_size: input columns sharing one scale and zero point; None: one per output row.
        method: "rtn" (round to nearest) or "gptq" (needs calibration data).
        damp: GPTQ's dampening, a fraction of the mean diagonal of H added to it.
        block_size: GPTQ's block of columns updated lazily (speed only; the result is the same).
    """

    bits: int = 4
    group_size: int | None = 128
    method: Literal["rtn", "gptq"] = "rtn"
    damp: float = 0.01
    block_size: int = 128

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise ValueError(f"bits must be an int from 2 to 8, got {self.bits!r}")
        if self.group_size is not None and (not isinstance(self.group_size, int) or self.group_size < 1):
            raise ValueError(f"group_size must be a positive int or None, got {self.group_size!r}")
        if self.method not in ("rtn", "gptq"):
            raise ValueError(f"method must be 'rtn' or 'gptq', got {self.method!r}")
        if not 0 <= self.damp < 1:
            raise ValueError(f"damp must be in [0, 1), got {self.damp!r}")

    @property
    def name(self) -> str:
        """Short label, e.g. ``int4-g128-rtn``, ``int2-g16-gptq``, ``int8-row-rtn``."""
        return f"int{self.bits}-{'row' if self.group_size is None else f'g{self.group_size}'}-{self.method}"

    def to_dict(self) -> dict:
        return asdict(self)


def bits_per_weight(config: IntConfig, in_features: int) -> float:
    """Stored bits per weight: the codes plus an fp16 scale and a ``bits``-bit zero point per group."""
    g = in_features if config.group_size is None else min(config.group_size, in_features)
    return config.bits + (16 + config.bits) / g


def _scale_zero(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric min-max scale and integer zero point of each row of ``w`` (R, g) -> (R, 1), (R, 1)."""
    maxq = 2 ** bits - 1
    lo = w.min(1, keepdim=True).values.clamp(max=0)
    hi = w.max(1, keepdim=True).values.clamp(min=0)
    scale = (hi - lo) / maxq
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: any scale works
    zero = torch.round(-lo / scale)
    return scale, zero


def _fake(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    q = torch.clamp(torch.round(w / scale) + zero, 0, 2 ** bits - 1)
    return scale * (q - zero)


def quantize_weight(w: torch.Tensor, bits: int, group_size: int | None = None) -> torch.Tensor:
    """Round-to-nearest: the dequantized ``bits``-bit copy of ``w`` (N, K), one asymmetric min-max scale
    and zero point per row and group of ``group_size`` columns (None: per row).

    >>> w = torch.tensor([[-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]])
    >>> quantize_weight(w, bits=2).tolist()   # 4 levels from -1 to 2, step 1; ties round to even
    [[-1.0, 0.0, 0.0, 0.0, 1.0, 2.0]]
    """
    if w.ndim != 2:
        raise ValueError(f"quantize_weight needs a 2-d weight (out, in), got shape {tuple(w.shape)}")
    out = torch.empty_like(w)
    g = w.shape[1] if group_size is None else group_size
    for j in range(0, w.shape[1], g):
        part = w[:, j:j + g]
        out[:, j:j + g] = _fake(part, *_scale_zero(part, bits), bits)
    return out


def gptq_weight(w: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int | None = None,
                damp: float = 0.01, block_size: int = 128) -> torch.Tensor:
    """GPTQ: the dequantized ``bits``-bit copy of ``w`` (N, K) that keeps ``x @ w.T`` close for inputs
    with second moment ``hessian`` (K, K) = ``2 X^T X`` (or any positive multiple).

    Columns are quantized left to right; the error of column ``j``, divided by ``[H^-1]_jj``, is spread over
    the later columns along row ``j`` of the upper Cholesky factor of ``H^-1`` (the optimal update of
    Optimal Brain Surgeon for a fixed order). Group scales are fitted when the loop reaches a group's first
    column, on the weights as updated so far. With ``hessian`` the identity no error moves (the inputs are
    uncorrelated) and GPTQ equals :func:`quantize_weight`.
    """
    if w.ndim != 2 or hessian.shape != (w.shape[1], w.shape[1]):
        raise ValueError(f"gptq_weight needs w (N, K) and hessian (K, K), got {tuple(w.shape)} and "
                         f"{tuple(hessian.shape)}")
    w = w.detach().to(torch.float64).clone()
    h = hessian.detach().to(torch.float64).clone()
    k = w.shape[1]
    dead = torch.diag(h) == 0  # inputs that are always 0: their weights do not matter
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k, dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)  # (K, K)
    g = k if group_size is None else group_size
    q = torch.zeros_like(w)
    scale = zero = None
    for b0 in range(0, k, block_size):
        b1 = min(b0 + block_size, k)
        w1 = w[:, b0:b1].clone()
        err = torch.zeros_like(w1)
        hinv1 = hinv[b0:b1, b0:b1]
        for i in range(b1 - b0):
            col = b0 + i
            if col % g == 0:  # a new group: fit its scale on the current (updated) weights
                part = torch.cat([w1[:, i:], w[:, b1:]], dim=1)[:, : min(g, k - col)]
                scale, zero = _scale_zero(part, bits)
            qc = _fake(w1[:, i:i + 1], scale, zero, bits)  # (N, 1)
            q[:, col:col + 1] = qc
            e = (w1[:, i:i + 1] - qc) / hinv1[i, i]
            w1[:, i:] -= e @ hinv1[i:i + 1, i:]
            err[:, i:i + 1] = e
        w[:, b1:] -= err @ hinv[b0:b1, b1:]
    return q.to(torch.float32)


def _linears(model: nn.Module, filter_fn: FilterFn) -> list[tuple[str, nn.Linear]]:
    if isinstance(model, nn.Linear):
        return [("", model)]
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and filter_fn(m, name)]


@torch.no_grad()
def int_quantize_(model: nn.Module, config: IntConfig | None = None,
                  calibration: Callable[[nn.Module], object] | None = None, filter_fn: FilterFn | None = None,
                  progress: bool = True) -> dict[str, dict[str, float]]:
    """Replace the weight of every matching ``nn.Linear`` of ``model`` by its integer-quantized copy, in place.

    Args:
        config: bits, group size and method (default: int4, groups of 128, RTN).
        calibration: for GPTQ, ``calibration(model)`` runs the model on calibration data (e.g.
            ``lambda m: m.encode(sentences)``); it is called once per layer, with earlier layers quantized.
        filter_fn: which Linear layers convert (default: all but task heads, as ``quantize_``).

    Returns:
        ``{layer name: {"bits_per_weight": float, "rel_error": float}}``, the relative Frobenius error of
        each weight. The model's ``int_quant`` attribute records the config.
    """
    from tqdm.auto import tqdm

    config = config or IntConfig()
    if config.method == "gptq" and calibration is None:
        raise ValueError("GPTQ needs calibration data: pass calibration=lambda m: m.encode(sentences) (or any "
                         "function that runs the model on representative inputs)")
    layers = _linears(model, filter_fn or default_filter)
    if not layers:
        raise ValueError(f"no nn.Linear layer to quantize in {type(model).__name__}")
    report: dict[str, dict[str, float]] = {}
    for name, layer in tqdm(layers, desc=f"{config.name}", unit="layer", disable=not progress):
        w = layer.weight.detach().float()
        if config.method == "rtn":
            q = quantize_weight(w, config.bits, config.group_size)
        else:
            h = torch.zeros(w.shape[1], w.shape[1], dtype=torch.float64)
            count = [0]

            def record(module, inputs, output, h=h, count=count):
                x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).to(torch.float64)  # (tokens, K)
                h.add_(2 * x.T @ x)
                count[0] += x.shape[0]

            handle = layer.register_forward_hook(record)
            try:
                calibration(model)
            finally:
                handle.remove()
            if count[0] == 0:
                raise ValueError(f"calibration never ran layer {name or type(layer).__name__}: check the function")
            q = gptq_weight(w, h / count[0], config.bits, config.group_size, config.damp, config.block_size)
        err = float(torch.linalg.norm(q - w) / torch.linalg.norm(w).clamp_min(1e-12))
        layer.weight.copy_(q.to(layer.weight.dtype))
        report[name] = {"bits_per_weight": bits_per_weight(config, w.shape[1]), "rel_error": err}
    model.int_quant = config
    return report


def mean_bits(report: dict[str, dict[str, float]], model: nn.Module) -> float:
    """Weight-count-weighted mean bits per weight of the layers in an :func:`int_quantize_` report."""
    total = bits = 0.0
    for name, r in report.items():
        numel = (model if name == "" else model.get_submodule(name)).weight.numel()
        total += numel
        bits += numel * r["bits_per_weight"]
    return bits / total if total else math.nan

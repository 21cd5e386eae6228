"""Kernel dispatch for frozen ternary linear layers, and the pure-PyTorch reference kernel.

A kernel computes ``y = x @ W^T + b`` for ``x`` of shape ``(..., K)`` and a packed ternary
``W`` of shape ``(N, K)``. The reference kernel below defines the truth: unpack the codes,
multiply by the scales, call ``F.linear``. Faster kernels register beside it with
:func:`register_kernel` and are tested against it; :func:`ternary_linear` picks, for each call,
the highest-priority kernel whose ``supports(x, w)`` holds, unless one is named.

Example:
    >>> import torch
    >>> from ternlib.kernels import PackedTernary, ternary_linear, available_kernels
    >>> from ternlib import TernaryConfig, ternarize
    >>> t = ternarize(torch.randn(8, 16), TernaryConfig())
    >>> w = PackedTernary.from_codes(t.codes, t.scales, TernaryConfig())
    >>> ternary_linear(torch.randn(2, 16), w).shape
    torch.Size([2, 8])
    >>> "reference" in available_kernels()
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .config import TernaryConfig
from .packing import pack, unpack
from .ternarize import dequantize


@dataclass
class PackedTernary:
    """What a kernel receives: packed codes, float32 scales and the layout to read them."""

    packed: torch.Tensor  # (N, ceil(K / per_byte)) uint8
    scales: torch.Tensor  # (1, 1) | (N, 1) | (N, n_groups) float32
    shape: tuple[int, int]  # (N, K)
    packing: str  # "2bit" | "5trit"
    group_size: int | None  # columns per scale group (None unless granularity="group")

    @classmethod
    def from_codes(cls, codes: torch.Tensor, scales: torch.Tensor, config: TernaryConfig) -> "PackedTernary":
        group = config.group_size if config.granularity == "group" else None
        return cls(pack(codes, config.packing), scales.float(), tuple(codes.shape), config.packing, group)

    def codes(self) -> torch.Tensor:
        """Unpacked int8 codes ``(N, K)``."""
        return unpack(self.packed, self.shape, self.packing, validate=False)

    def dequantize(self) -> torch.Tensor:
        """The float32 weight ``(N, K)`` these codes and scales stand for."""
        return dequantize(self.codes(), self.scales, self.group_size)


KernelFn = Callable[[torch.Tensor, PackedTernary, "torch.Tensor | None"], torch.Tensor]
SupportsFn = Callable[[torch.Tensor, PackedTernary], bool]


@dataclass
class Kernel:
    name: str
    fn: KernelFn
    priority: int
    supports: SupportsFn


_KERNELS: dict[str, Kernel] = {}


def register_kernel(name: str, *, priority: int = 0, supports: SupportsFn | None = None) -> Callable[[KernelFn], KernelFn]:
    """Decorator that registers ``fn(x, w, bias) -> y`` under ``name``.

    Higher ``priority`` wins when several kernels support a call; ``supports`` (default:
    always) says whether the kernel can run a given input and weight (device, dtype, size).
    """

    def deco(fn: KernelFn) -> KernelFn:
        _KERNELS[name] = Kernel(name, fn, priority, supports or (lambda x, w: True))
        return fn

    return deco


def available_kernels() -> list[str]:
    """Registered kernel names, highest priority first."""
    return [k.name for k in sorted(_KERNELS.values(), key=lambda k: -k.priority)]


def select_kernel(x: torch.Tensor, w: PackedTernary, name: str | None = None) -> Kernel:
    """The kernel :func:`ternary_linear` would use for this call."""
    if name is not None:
        if name not in _KERNELS:
            raise ValueError(f"unknown ternary kernel {name!r}; registered: {available_kernels()}")
        kernel = _KERNELS[name]
        if not kernel.supports(x, w):
            raise ValueError(f"kernel {name!r} does not support input {tuple(x.shape)} {x.dtype} on {x.device}")
        return kernel
    for kernel in sorted(_KERNELS.values(), key=lambda k: -k.priority):
        if kernel.supports(x, w):
            return kernel
    raise RuntimeError("no registered ternary kernel supports this call")  # reference supports all


def ternary_linear(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None = None, kernel: str | None = None) -> torch.Tensor:
    """``x @ W^T + bias`` for a packed ternary ``W``; ``x`` is ``(..., K)``, the result ``(..., N)``."""
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[-1]} features in its last dimension, the layer expects {w.shape[1]}")
    return select_kernel(x, w, kernel).fn(x, w, bias)


@register_kernel("reference", priority=0)
def reference_kernel(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None) -> torch.Tensor:
    """The truth: unpack, dequantize in float32, cast to ``x.dtype``, ``F.linear``."""
    weight = w.dequantize().to(device=x.device, dtype=x.dtype)  # (N, K)
    b = None if bias is None else bias.to(x.dtype)
    return F.linear(x, weight, b)  # (..., N)

"""The kernel registry: what a kernel receives, how kernels register, and how a call picks one.

A kernel computes ``y = x @ W^T + b`` for ``x`` of shape ``(..., K)`` and a packed ternary
``W`` of shape ``(N, K)`` (a :class:`PackedTernary`). Kernels register with
:func:`register_kernel`; :func:`ternary_linear` picks, for each call, the highest-priority kernel
whose ``supports(x, w)`` holds, unless one is named (per layer, ``layer.kernel = "name"``, or for
the whole process, ``TERNLIB_KERNEL=name``). Small against large batches is decided by
:func:`crossover` (tokens per call). The package :mod:`ternlib.kernels` re-exports all of this.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..config import TernaryConfig
from ..packing import pack, unpack
from ..ternarize import dequantize


@dataclass
class PackedTernary:
    """What a kernel receives: packed codes, float32 scales and the layout to read them."""

    packed: torch.Tensor  # (N, ceil(K / per_byte)) uint8
    scales: torch.Tensor  # (1, 1) | (N, 1) | (N, n_groups) float32
    shape: tuple[int, int]  # (N, K)
    packing: str  # "2bit" | "5trit"
    group_size: int | None  # columns per scale group (None unless granularity="group")
    activations: str = "float"  # "float" | "int8" (per-token absmax int8)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # kernel-specific forms, see cached()

    @classmethod
    def from_codes(cls, codes: torch.Tensor, scales: torch.Tensor, config: TernaryConfig) -> "PackedTernary":
        return cls(pack(codes, config.packing), scales.float(), tuple(codes.shape), config.packing,
                   config.scale_group_size, config.activations)

    def cached(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` computed once and kept in :attr:`cache` while the packed codes are unchanged.

        Kernels keep their own forms of the weight here (a re-packed layout, unpacked int8
        codes), so nothing is re-unpacked per call. A frozen ``TernaryLinear`` passes the same
        dict on every call; moving the layer or loading new codes into it invalidates it.
        """
        key = (self.packed.data_ptr(), _version(self.packed), self.packed.device, self.scales.data_ptr(),
               _version(self.scales))
        if self.cache.get("_key") != key:
            self.cache.clear()
            self.cache["_key"] = key
        if name not in self.cache:
            self.cache[name] = make()
        return self.cache[name]

    def codes(self) -> torch.Tensor:
        """Unpacked int8 codes ``(N, K)``."""
        return unpack(self.packed, self.shape, self.packing, validate=False)

    def dequantize(self) -> torch.Tensor:
        """The float32 weight ``(N, K)`` these codes and scales stand for."""
        return dequantize(self.codes(), self.scales, self.group_size)


def _version(t: torch.Tensor) -> int | None:
    # inference tensors (made under torch.inference_mode) keep no version counter (and cannot be
    # modified outside inference mode); asking raises, which is slow, so ask first
    return None if t.is_inference() else t._version


KernelFn = Callable[[torch.Tensor, PackedTernary, "torch.Tensor | None"], torch.Tensor]
SupportsFn = Callable[[torch.Tensor, PackedTernary], bool]


@dataclass
class Kernel:
    name: str
    fn: KernelFn
    priority: int
    supports: SupportsFn


_KERNELS: dict[str, Kernel] = {}
_BY_PRIORITY: list[Kernel] = []  # _KERNELS' values, highest priority first


def register_kernel(name: str, *, priority: int = 0,
                    supports: SupportsFn | None = None) -> Callable[[KernelFn], KernelFn]:
    """Decorator that registers ``fn(x, w, bias) -> y`` under ``name``.

    Higher ``priority`` wins when several kernels support a call; ``supports`` (default:
    always) says whether the kernel can run a given input and weight (device, dtype, size).
    """

    def deco(fn: KernelFn) -> KernelFn:
        _KERNELS[name] = Kernel(name, fn, priority, supports or (lambda x, w: True))
        _BY_PRIORITY[:] = sorted(_KERNELS.values(), key=lambda k: -k.priority)
        return fn

    return deco


def unregister_kernel(name: str) -> None:
    """Remove a kernel registered with :func:`register_kernel` (``KeyError`` if unknown)."""
    del _KERNELS[name]
    _BY_PRIORITY[:] = sorted(_KERNELS.values(), key=lambda k: -k.priority)


def available_kernels() -> list[str]:
    """Registered kernel names, highest priority first."""
    return [k.name for k in sorted(_KERNELS.values(), key=lambda k: -k.priority)]


_CROSSOVER = [None]


def crossover() -> int:
    """Largest number of tokens (rows of ``x``) for which the small-batch kernels are chosen.

    Default 64, from the benchmark's crossover sweep (``python -m ternlib bench``: the 36
    linears of MiniLM run as a stack, int8 activations), which also prints the crossover it
    measures on the machine it runs on: 64 in three runs on a 2-core AMD EPYC (AVX-512 VNNI) with
    the ``rows16`` packed kernel; 16 on a 2-core Intel Xeon with AMX and the older kernel (the
    ``bench_cpu_shapes.json`` of commit 25b7d50). Override with
    :func:`set_crossover` or ``TERNLIB_CROSSOVER``.
    """
    if _CROSSOVER[0] is not None:
        return _CROSSOVER[0]
    env = os.environ.get("TERNLIB_CROSSOVER")
    if env is None:
        return 64
    try:
        return int(env)
    except ValueError:
        raise ValueError(f"TERNLIB_CROSSOVER must be an integer number of tokens, got {env!r}") from None


def set_crossover(tokens: int | None) -> None:
    """Set :func:`crossover` for this process (``None`` restores the default)."""
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0):
        raise ValueError(f"crossover must be a non-negative int or None, got {tokens!r}")
    _CROSSOVER[0] = tokens


def select_kernel(x: torch.Tensor, w: PackedTernary, name: str | None = None) -> Kernel:
    """The kernel :func:`ternary_linear` would use for this call."""
    name = name or os.environ.get("TERNLIB_KERNEL") or None
    if name is not None:
        if name not in _KERNELS:
            raise ValueError(f"unknown ternary kernel {name!r}; registered: {available_kernels()}")
        kernel = _KERNELS[name]
        if not kernel.supports(x, w):
            raise ValueError(f"kernel {name!r} does not support input {tuple(x.shape)} {x.dtype} on {x.device}")
        return kernel
    for kernel in _BY_PRIORITY:
        if kernel.supports(x, w):
            return kernel
    raise RuntimeError("no registered ternary kernel supports this call")  # reference supports all


def ternary_linear(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None = None,
                   kernel: str | None = None) -> torch.Tensor:
    """``x @ W^T + bias`` for a packed ternary ``W``; ``x`` is ``(..., K)``, the result ``(..., N)``."""
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[-1]} features in its last dimension, the layer expects {w.shape[1]}")
    return select_kernel(x, w, kernel).fn(x, w, bias)

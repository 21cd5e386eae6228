"""Kernel dispatch for frozen ternary linear layers.

A kernel computes ``y = x @ W^T + b`` for ``x`` of shape ``(..., K)`` and a packed ternary
``W`` of shape ``(N, K)``. The reference kernel (:mod:`ternlib.kernels.reference`) defines the
truth: unpack the codes, multiply by the scales, call ``F.linear``. Faster kernels register beside
it with :func:`register_kernel` and are tested against it; :func:`ternary_linear` picks, for each
call, the highest-priority kernel whose ``supports(x, w)`` holds, unless one is named (per layer,
``layer.kernel = "name"``, or for the whole process, ``TERNLIB_KERNEL=name``).

Registered kernels: ``reference`` (any device), ``cpu_packed`` (C++, small batches),
``cpu_unpacked`` (PyTorch int8/bf16 GEMM, large batches), both in :mod:`ternlib.kernels.cpu`,
``triton_packed`` and ``triton_int8`` (CUDA; :mod:`ternlib.kernels.triton`, registered where
triton is installed). Small against large is decided by :func:`crossover` (tokens per call).

Activations: with ``activations="float"`` the reference computes ``F.linear(x, scale * codes)``;
with ``"int8"`` it first quantizes each token (row of ``x``) to int8 with
:func:`quantize_activations` (:mod:`ternlib.activations`) and computes the integer products
exactly, so integer kernels must match it bit for bit.

Layout: :mod:`~ternlib.kernels.registry` (:class:`PackedTernary`, registration, dispatch,
crossover), :mod:`~ternlib.kernels.reference`, :mod:`~ternlib.kernels.ops` (the dispatch as the
custom operator ``torch.ops.ternlib.ternary_linear``, which ``torch.compile`` and ``torch.export``
see), and one subpackage per backend, each importing only the registry, the reference and
:mod:`ternlib.activations`.

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

from ..activations import fake_quantize_activations, quantize_activations  # re-exported for compatibility
from .reference import reference_kernel
from .registry import (
    Kernel,
    KernelFn,
    PackedTernary,
    SupportsFn,
    available_kernels,
    crossover,
    register_kernel,
    select_kernel,
    set_crossover,
    ternary_linear,
    unregister_kernel,
)

# isort: split
# The backends register their kernels when imported: cpu always, triton where it is installed.
from . import cpu  # noqa: F401  (cpu_packed, cpu_unpacked)
from .ops import ternary_linear_op  # torch.ops.ternlib.ternary_linear, what torch.compile / torch.export see

try:
    from . import triton  # noqa: F401  (triton_packed, triton_int8)
except ImportError:  # triton is not installed
    pass

__all__ = [
    "Kernel", "KernelFn", "PackedTernary", "SupportsFn", "available_kernels", "crossover", "fake_quantize_activations",
    "quantize_activations", "reference_kernel", "register_kernel", "select_kernel", "set_crossover", "ternary_linear",
    "ternary_linear_op", "unregister_kernel",
]

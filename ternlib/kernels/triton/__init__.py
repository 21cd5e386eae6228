"""Triton GPU kernels for frozen ternary layers, registered beside the reference kernel.

Two registered kernels (CUDA; see :mod:`ternlib.kernels` for the dispatch):

- ``triton_packed`` (float activations, ``M`` <= :func:`ternlib.kernels.crossover` tokens): reads
  the 2-bit codes straight from the packed buffer and unpacks them in registers, float32
  accumulation, then ``y = acc * scale + bias`` in float32 and a cast to ``x.dtype``. The weight
  stays at 2 bits in memory (8x fewer bytes than float16), which is what decides the time of a
  call with few tokens. Matches the reference to rounding: the reference rounds ``scale * code``
  to ``x.dtype`` before its GEMM, this kernel applies the float32 scale after it.
- ``triton_int8`` (``activations="int8"``, any ``M``; and float activations at large ``M``):
  per-token int8 quantization exactly as :func:`ternlib.activations.quantize_activations`, an
  int8 x int8 -> int32 product and the epilogue ``y = float32(acc) * (sx[m] * sw[n]) + b[n]``,
  computed in that order with FMA contraction switched off, so the result equals the reference
  bit for bit. Methods (:func:`int8_matmul`):

  * ``"fused"`` (small ``M``): one launch; quantizes the activations inside the GEMM and
    unpacks the 2-bit codes in registers.
  * ``"split"``: a quantization launch, then a Triton GEMM on the packed codes (no int8 copy
    of the weight).
  * ``"int_mm"``: a quantization launch, ``torch._int_mm`` (cuBLASLt int8) on int8 codes
    unpacked once and cached with the layer (``w.cached("int8_codes_kn")``), and an epilogue launch.

  At large ``M`` the faster of ``split`` and ``int_mm`` is measured once per device, shape and
  power-of-two bucket of ``M`` on the first call (a few milliseconds, all exact, so the choice
  never changes a result); ``TERNLIB_TRITON_INT8_LARGE=split|int_mm`` forces one.
  With float activations at large ``M`` it hands the product to cuBLAS: ``F.linear`` on the
  weight dequantized to ``x.dtype``, cached with the layer (2 bytes a weight) -- exactly what
  the reference computes, at cuBLAS speed.

Small ``M`` (up to :func:`gemv_max_m` tokens, default 1, as measured on an H100;
``TERNLIB_TRITON_GEMV_M``): both kernels use a split-K GEMV instead (:func:`gemv_matmul`;
``float_matmul(method="gemv"|"tile")`` and ``int8_matmul(method="gemv"|"gemv_fused"|"gemv_q"|"fused"|...)``
force one). Its grid is (column blocks, K splits) -- >= 4 programs per SM on the encoder shapes -- each program loads
one ``(BLOCK_N, BLOCK_KB)`` tile of packed bytes, multiplies each 2-bit plane with the M
activation rows by broadcasting (no ``tl.dot``, no padding of M to 16 rows) and adds its
partial sums into a scratch buffer with atomics (float32; int32 for int8 activations, exact in
any order); the program that finishes a column block last (a counter per block) applies the
epilogue and leaves the scratch at zero, so one launch does a call (the int8 path quantizes
inside it while ``M * K * elem_bytes <= 8 KiB``, else in a launch of its own first). Why only
M = 1 by default: the products run on the FP32/INT32 units, ``M`` times the work per weight
byte; measured on an H100 (``book/artifacts/kernels/gpu_check_h100.json``) the GEMV beats the
tiled kernel at one token (int8: 5.3 vs 18 us on 768->3072) but loses from a few tokens on
(26 vs 8 us at M = 8), where ``tl.dot`` on a 16-row tile wins.
The scratch is kept with the layer and assumes one stream at a time uses a layer (as with
any module); concurrent calls of the same layer on two streams must not overlap.

Unpacking: byte ``kb`` of a packed row holds codes ``4 kb + j`` in bits ``2j, 2j + 1`` (``u = c +
1``). The GEMM kernels load a ``(BLOCK_N, BLOCK_KB)`` tile of whole bytes (one contiguous,
vectorized load), take the four 2-bit planes with shifts and masks and interleave them back
into a ``(4 BLOCK_KB, BLOCK_N)`` code tile in registers (``tl.join`` + ``tl.reshape``), so the
activations are read as contiguous ``(BLOCK_M, 4 BLOCK_KB)`` tiles and each step is one
``tl.dot``. At small ``M`` (up to 64 tokens) a call is memory-bound on the weight, and the
configuration (:func:`default_config`) spreads the output columns over every SM in narrow
``BLOCK_N = 16`` tiles; at large ``M`` it uses 64..128-wide tiles.

Supported: ``packing="2bit"``, one scale per tensor or per row (group scales fall back to the
reference), ``x`` in float16, bfloat16 or float32, compute capability >= 8.0. float32 inputs use
full-precision (non-TF32) dots.

The exact int8 path reproduces PyTorch's own arithmetic: ``127 / amax`` is
``reciprocal(amax) * 127`` in PyTorch, and ``amax / 127`` is a true division on the CPU but a
multiplication by ``float32(1/127)`` on CUDA; which one a device uses is probed once (see
:func:`quantization_arithmetic`), and if neither matches the kernel quantizes with
:func:`~ternlib.activations.quantize_activations` itself.

Launch configurations come from :func:`default_config` (simple rules on ``M``, ``N``, ``K``
and the number of SMs, no autotuning); the per-call Python work is kept small (one cache
look-up per call for the launch plan) because a batch-1 encoder is launch-bound.

``triton`` is imported on first use, not with ternlib; where it is not installed this package
raises ``ImportError`` and nothing is registered. Testing without a GPU: with
``TRITON_INTERPRET=1`` set before the first kernel call, Triton runs the kernels in its NumPy
interpreter and both kernels also accept CPU tensors (slow; in that mode they may also be
picked automatically for CPU calls). Without it, CPU calls never select them.

Modules: :mod:`~ternlib.kernels.triton.jit` (the Triton kernels, compiled by its ``load()`` on
first use), :mod:`~ternlib.kernels.triton.configs` (launch configurations) and
:mod:`~ternlib.kernels.triton.ops` (launchers, the large-M method choice, registration); the
names above are re-exported here.

Example:
    >>> import torch
    >>> from ternlib import TernaryConfig, ternarize
    >>> from ternlib.kernels import PackedTernary, select_kernel
    >>> cfg = TernaryConfig(activations="int8")
    >>> t = ternarize(torch.randn(64, 200), cfg)
    >>> w = PackedTernary.from_codes(t.codes.cuda(), t.scales.cuda(), cfg)  # doctest: +SKIP
    >>> select_kernel(torch.randn(3, 200, device="cuda", dtype=torch.float16), w).name  # doctest: +SKIP
    'triton_int8'
"""
from __future__ import annotations

import importlib.util

if importlib.util.find_spec("triton") is None:
    raise ImportError("triton is not installed; the Triton kernels are not registered")

from .configs import (  # noqa: E402
    GEMV_MAX_M,
    default_config,
    gemv_config,
    gemv_max_m,
    make_config,
    num_sms,
    set_gemv_max_m,
)
from .jit import INTERPRET, load, load_error  # noqa: E402
from .ops import (  # noqa: E402
    GEMV_INT8_METHODS,
    LARGE_INT8_METHODS,
    float_matmul,
    gemv_matmul,
    int8_matmul,
    int_mm_eligible,
    large_int8_method,
    quantization_arithmetic,
    quantize,
    triton_int8_kernel,
    triton_packed_kernel,
    tuning_log,
)

__all__ = [
    "GEMV_INT8_METHODS", "GEMV_MAX_M", "INTERPRET", "LARGE_INT8_METHODS", "default_config", "float_matmul",
    "gemv_config", "gemv_matmul", "gemv_max_m", "int8_matmul", "int_mm_eligible", "large_int8_method", "load",
    "load_error", "make_config", "num_sms", "quantization_arithmetic", "quantize", "set_gemv_max_m",
    "triton_int8_kernel", "triton_packed_kernel", "tuning_log",
]

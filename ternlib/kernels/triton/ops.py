"""Triton GPU kernels for frozen ternary layers, registered beside the reference kernel.

Two registered kernels (CUDA; see :mod:`ternlib.kernels` for the dispatch):

- ``triton_packed`` (float activations, ``M`` <= :func:`ternlib.kernels.crossover` tokens): reads
  the 2-bit codes straight from the packed buffer and unpacks them in registers, float32
  accumulation, then ``y = acc * scale + bias`` in float32 and a cast to ``x.dtype``. The weight
  stays at 2 bits in memory (8x fewer bytes than float16), which is what decides the time of a
  call with few tokens. Matches the reference to rounding: the reference rounds ``scale * code``
  to ``x.dtype`` before its GEMM, this kernel applies the float32 scale after it.
- ``triton_int8`` (``activations="int8"``, any ``M``; and float activations at large ``M``):
  per-token int8 quantization exactly as :func:`ternlib.kernels.quantize_activations`, an
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

Small ``M`` (up to :func:`gemv_max_m` tokens, default 1, as measured on an H100; ``TERNLIB_TRITON_GEMV_M``): both kernels
use a split-K GEMV instead (:func:`gemv_matmul`; ``float_matmul(method="gemv"|"tile")`` and
``int8_matmul(method="gemv"|"gemv_fused"|"gemv_q"|"fused"|...)`` force one). Its grid is
(column blocks, K splits) -- >= 4 programs per SM on the encoder shapes -- each program loads
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
:func:`~ternlib.kernels.quantize_activations` itself.

Launch configurations come from :func:`default_config` (simple rules on ``M``, ``N``, ``K``
and the number of SMs, no autotuning); the per-call Python work is kept small (one cache
look-up per call for the launch plan) because a batch-1 encoder is launch-bound.

``triton`` is imported on first use, not with ternlib; where it is not installed this module
raises ``ImportError`` and nothing is registered. Testing without a GPU: with
``TRITON_INTERPRET=1`` set before the first kernel call, Triton runs the kernels in its NumPy
interpreter and both kernels also accept CPU tensors (slow; in that mode they may also be
picked automatically for CPU calls). Without it, CPU calls never select them.

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
import os
import threading
from typing import Any

import torch
import torch.nn.functional as F

from .kernels import PackedTernary, crossover, quantize_activations, register_kernel

if importlib.util.find_spec("triton") is None:
    raise ImportError("triton is not installed; the Triton kernels are not registered")

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"  # Triton's NumPy interpreter: CPU tensors allowed

_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_LOCK = threading.Lock()
_STATE: dict[Any, Any] = {}  # "triton": module | None, "error": str, per-device probes
_CHOICES: dict[tuple, str] = {}  # large-M int8 method measured per (device, dtype, N, K, M bucket, ...)
_TUNING_LOG: list[dict] = []  # what those measurements saw (tuning_log())
_JIT_NAMES: list[str] = []
LARGE_INT8_METHODS = ("split", "int_mm")
GEMV_INT8_METHODS = ("gemv", "gemv_fused", "gemv_q")

triton: Any = None  # the modules, bound by _load() on first use
tl: Any = None
libdevice: Any = None


def _jit(fn):
    """Mark ``fn`` as a Triton kernel; it is compiled with ``triton.jit`` by :func:`_load`."""
    _JIT_NAMES.append(fn.__name__)
    return fn


def _load() -> bool:
    """Import triton and jit the kernels of this module, once; ``False`` if that fails."""
    if "triton" in _STATE:
        return _STATE["triton"] is not None
    with _LOCK:
        if "triton" in _STATE:
            return _STATE["triton"] is not None
        try:
            import triton as _triton
            import triton.language as _tl
            from triton.language.extra import libdevice as _libdevice

            g = globals()
            g["triton"], g["tl"], g["libdevice"] = _triton, _tl, _libdevice
            for name in _JIT_NAMES:  # helpers first (they are defined first), then kernels
                g[name] = _triton.jit(g[name])
            _STATE["triton"] = _triton
        except Exception as e:  # broken install, unsupported platform
            _STATE["triton"] = None
            _STATE["error"] = f"{type(e).__name__}: {e}"
    return _STATE["triton"] is not None


def load_error() -> str | None:
    """Why triton could not be loaded (``None`` if it loaded or was not tried yet)."""
    return _STATE.get("error")


# --------------------------------------------------------------------------- Triton code
# The GEMM kernels compute one (BLOCK_M, BLOCK_N) tile of y = x @ W^T, looping over the packed
# bytes in BLOCK_KB steps (4 * BLOCK_KB codes a step, four planes). Programs are ordered in
# groups of GROUP_M row-tiles so neighbours share weight tiles in L2.


@_jit
def _store_tile(acc, sx, offs_m, offs_n, M, N, s_ptr, b_ptr, y_ptr,
                INT8: tl.constexpr, PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr):
    """The epilogue of every kernel here, on a (BLOCK_M, BLOCK_N) tile of sums: scales, bias, store.

    INT8: ``y = float32(acc) * (sx[m] * sw[n]) + b[n]`` in that order (launch with FMA fusion off,
    so it equals the reference bit for bit); else ``y = acc * sw + b`` with the bias rounded to y's dtype.
    """
    mask_n = offs_n < N
    if INT8:  # y = float32(acc) * (sx[m] * sw[n]) + b[n]
        if PER_ROW:
            sw = tl.load(s_ptr + offs_n, mask=mask_n, other=0.0)
            y = acc.to(tl.float32) * (sx[:, None] * sw[None, :])
        else:
            y = acc.to(tl.float32) * (sx * tl.load(s_ptr))[:, None]
        if HAS_BIAS:
            y = y + tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    else:  # y = acc * scale + bias rounded to y's dtype
        if PER_ROW:
            y = acc * tl.load(s_ptr + offs_n, mask=mask_n, other=0.0)[None, :]
        else:
            y = acc * tl.load(s_ptr)
        if HAS_BIAS:
            bias = tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(y_ptr.dtype.element_ty)
            y = y + bias.to(tl.float32)[None, :]
    tl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], y.to(y_ptr.dtype.element_ty),
             mask=(offs_m[:, None] < M) & mask_n[None, :])


@_jit
def _tile_ids(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    width = GROUP_M * grid_n
    first_m = (pid // width) * GROUP_M
    group_m = min(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % group_m
    pid_n = (pid % width) // group_m
    return pid_m, pid_n


@_jit
def _plane(bytes32, J: tl.constexpr):
    """Codes 4 kb + J of a tile of packed bytes: ((byte >> 2J) & 3) - 1, int32 in {-1, 0, 1}."""
    return ((bytes32 >> (2 * J)) & 3) - 1


@_jit
def _codes_tile(w_ptr, offs_n, offs_kb, KB, N, stride_wn, BLOCK_N: tl.constexpr, BLOCK_KB: tl.constexpr):
    """(4 BLOCK_KB, BLOCK_N) int32 codes of rows offs_n, columns 4 offs_kb[0] ...: code k of row n at [k, n].

    One contiguous (vectorized) load of (BLOCK_N, BLOCK_KB) bytes; the four 2-bit planes are
    interleaved back in registers (join + reshape: element [n, kb, a, b] is plane 2a + b, i.e.
    column 4 kb + 2a + b). Bytes outside the matrix read as 85 (four codes 0).
    """
    bt = tl.load(w_ptr + offs_n[:, None] * stride_wn + offs_kb[None, :],
                 mask=(offs_n[:, None] < N) & (offs_kb[None, :] < KB), other=85).to(tl.int32)  # (BLOCK_N, BLOCK_KB)
    ct = tl.join(tl.join(_plane(bt, 0), _plane(bt, 2)), tl.join(_plane(bt, 1), _plane(bt, 3)))  # (BN, BKB, 2, 2)
    return tl.trans(tl.reshape(ct, (BLOCK_N, 4 * BLOCK_KB)))


@_jit
def _row_amax(x_ptr, offs_m, M, K, stride_xm, stride_xk, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """max |x| of each row in offs_m over all K columns, float32 (BLOCK_M,)."""
    amax = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)
        amax = tl.maximum(amax, tl.max(tl.abs(a.to(tl.float32)), axis=1))
    return amax


@_jit
def _quant_scales(amax, rcp127, SX_RCP: tl.constexpr):
    """(inv, sx) as quantize_activations computes them: inv = reciprocal(amax) * 127 (0 if amax == 0)."""
    safe = tl.where(amax > 0, amax, 1.0)
    inv = tl.where(amax > 0, tl.math.div_rn(tl.full(amax.shape, 1.0, tl.float32), safe) * 127.0, 0.0)
    if SX_RCP:  # the reference: amax * float32(1 / 127)
        sx = amax * rcp127
    else:  # a reference that divides
        sx = tl.math.div_rn(amax, tl.full(amax.shape, 127.0, tl.float32))
    return inv, sx


@_jit
def _quantize(a, inv, USE_LIBDEVICE: tl.constexpr):
    """int8 q = clamp(round_half_even(a * inv), -127, 127) for float32 a (BLOCK_M, BLOCK_K), inv (BLOCK_M,)."""
    v = a * inv[:, None]
    if USE_LIBDEVICE:
        r = libdevice.rint(v)
    else:  # the interpreter has no libdevice: 1.5 * 2**23 rounds |v| < 2**22 half to even
        r = (v + 12582912.0) - 12582912.0
    return tl.minimum(tl.maximum(r, -127.0), 127.0).to(tl.int8)


@_jit
def _float_kernel(x_ptr, w_ptr, s_ptr, b_ptr, y_ptr, M, N, K, KB, stride_xm, stride_xk, stride_wn,
                  PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KB: tl.constexpr, GROUP_M: tl.constexpr):
    """y = (x @ codes^T) * scale + bias, float32 accumulation, stored in y's dtype (y contiguous (M, N)).

    The bias is rounded to y's dtype first, as the reference's F.linear(x, w, bias.to(x.dtype)) does.
    """
    pid_m, pid_n = _tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kb0 in range(0, KB, BLOCK_KB):
        offs_kb = kb0 + tl.arange(0, BLOCK_KB)
        offs_k = kb0 * 4 + tl.arange(0, 4 * BLOCK_KB)
        a = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)  # (BLOCK_M, 4 BLOCK_KB)
        b = _codes_tile(w_ptr, offs_n, offs_kb, KB, N, stride_wn, BLOCK_N, BLOCK_KB).to(x_ptr.dtype.element_ty)
        if IEEE:
            acc = tl.dot(a, b, acc, input_precision="ieee")
        else:
            acc = tl.dot(a, b, acc)
    _store_tile(acc, 0.0, offs_m, offs_n, M, N, s_ptr, b_ptr, y_ptr, False, PER_ROW, HAS_BIAS)  # no sx: float


@_jit
def _quant_kernel(x_ptr, q_ptr, sx_ptr, M, K, stride_xm, stride_xk, stride_qm, rcp127,
                  SX_RCP: tl.constexpr, USE_LIBDEVICE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """q (M, K) int8 and sx (M,) float32 of quantize_activations, BLOCK_M rows a program."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    amax = _row_amax(x_ptr, offs_m, M, K, stride_xm, stride_xk, BLOCK_M, BLOCK_K)
    inv, sx = _quant_scales(amax, rcp127, SX_RCP)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask = (offs_m[:, None] < M) & (offs_k[None, :] < K)
        a = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk, mask=mask, other=0.0)
        tl.store(q_ptr + offs_m[:, None] * stride_qm + offs_k[None, :], _quantize(a.to(tl.float32), inv, USE_LIBDEVICE),
                 mask=mask)
    tl.store(sx_ptr + offs_m, sx, mask=offs_m < M)


@_jit
def _int8_kernel(x_ptr, sx_ptr, w_ptr, s_ptr, b_ptr, y_ptr, M, N, K, KB, stride_xm, stride_xk, stride_wn, rcp127,
                 FUSED_QUANT: tl.constexpr, SX_RCP: tl.constexpr, USE_LIBDEVICE: tl.constexpr,
                 PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KB: tl.constexpr, GROUP_M: tl.constexpr):
    """y = float32(q @ codes^T) * (sx[m] * sw[n]) + b[n] (y contiguous (M, N)). Launch with enable_fp_fusion=False.

    FUSED_QUANT: q and sx computed here from float x; otherwise x_ptr is the int8 q and sx_ptr
    the float32 sx of _quant_kernel.
    """
    pid_m, pid_n = _tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if FUSED_QUANT:
        amax = _row_amax(x_ptr, offs_m, M, K, stride_xm, stride_xk, BLOCK_M, 4 * BLOCK_KB)
        inv, sx = _quant_scales(amax, rcp127, SX_RCP)
    else:
        sx = tl.load(sx_ptr + offs_m, mask=offs_m < M, other=0.0)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for kb0 in range(0, KB, BLOCK_KB):
        offs_kb = kb0 + tl.arange(0, BLOCK_KB)
        offs_k = kb0 * 4 + tl.arange(0, 4 * BLOCK_KB)
        a = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0)  # (BLOCK_M, 4 BLOCK_KB)
        if FUSED_QUANT:
            q = _quantize(a.to(tl.float32), inv, USE_LIBDEVICE)
        else:
            q = a
        b = _codes_tile(w_ptr, offs_n, offs_kb, KB, N, stride_wn, BLOCK_N, BLOCK_KB).to(tl.int8)
        acc = tl.dot(q, b, acc, out_dtype=tl.int32)
    _store_tile(acc, sx, offs_m, offs_n, M, N, s_ptr, b_ptr, y_ptr, True, PER_ROW, HAS_BIAS)


@_jit
def _epilogue_kernel(acc_ptr, sx_ptr, s_ptr, b_ptr, y_ptr, M, N, PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """y = float32(acc) * (sx[m] * sw[n]) + b[n] for int32 acc (M, N) contiguous. Launch with enable_fp_fusion=False."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    acc = tl.load(acc_ptr + offs_m[:, None] * N + offs_n[None, :], mask=mask, other=0)
    sx = tl.load(sx_ptr + offs_m, mask=offs_m < M, other=0.0)
    _store_tile(acc, sx, offs_m, offs_n, M, N, s_ptr, b_ptr, y_ptr, True, PER_ROW, HAS_BIAS)


# The split-K GEMV kernel (small M): program (pid_n, pid_k) reads one (BLOCK_N, BLOCK_KB) tile of
# packed bytes -- rows pid_n * BLOCK_N ..., bytes pid_k * BLOCK_KB ... (codes 4 pid_k BLOCK_KB ...)
# -- and multiplies it with the matching activations of all M (<= BLOCK_M) rows, without tl.dot:
# per 2-bit plane j, codes (BLOCK_N, BLOCK_KB) times activations (BLOCK_M, BLOCK_KB) at columns
# 4 kb + j, broadcast to (BLOCK_M, BLOCK_N, BLOCK_KB) and summed over the last axis. The partial
# sums of the K splits meet in a scratch buffer (M, N) (float32, or int32 for int8 activations:
# exact whatever the order) through atomic adds; a per-column-block counter tells the program that
# finishes last, which reads the sums back while resetting them to zero (atomic exchange), resets
# the counter and writes y. The scratch buffer is therefore zero again after every call and is kept
# with the layer (one launch a call, no memset).


@_jit
def _gemv_kernel(x_ptr, sx_ptr, w_ptr, s_ptr, b_ptr, y_ptr, acc_ptr, cnt_ptr, M, N, K, KB,
                 stride_xm, stride_xk, stride_wn, rcp127,
                 INT8: tl.constexpr, FUSED_QUANT: tl.constexpr, SX_RCP: tl.constexpr, USE_LIBDEVICE: tl.constexpr,
                 PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr, ONE_SPLIT: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KB: tl.constexpr, AMAX_BLOCK: tl.constexpr):
    """Split-K GEMV, grid (cdiv(N, BLOCK_N), cdiv(KB, BLOCK_KB)); all M <= BLOCK_M rows in every program.

    float (INT8 False): x float, float32 products and sums, the epilogue of _float_kernel.
    INT8: FUSED_QUANT -- x float, every program computes the amax of the M rows over all of K and
    quantizes its own chunk (_row_amax, _quant_scales, _quantize: the arithmetic of _quant_kernel);
    otherwise x_ptr is the int8 q and sx_ptr the float32 sx of _quant_kernel. Exact int32 sums,
    the epilogue of _int8_kernel. Launch with enable_fp_fusion=False.
    acc_ptr: (M, N) float32 / int32 zeros, cnt_ptr: (cdiv(N, BLOCK_N),) int32 zeros; both are zero
    again when the kernel ends (unused if ONE_SPLIT: a single K split stores y directly).
    """
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_kb = pid_k * BLOCK_KB + tl.arange(0, BLOCK_KB)
    mask_m = offs_m < M
    bt = tl.load(w_ptr + offs_n[:, None] * stride_wn + offs_kb[None, :],
                 mask=(offs_n[:, None] < N) & (offs_kb[None, :] < KB), other=85).to(tl.int32)  # (BLOCK_N, BLOCK_KB)
    if INT8:
        if FUSED_QUANT:
            amax = _row_amax(x_ptr, offs_m, M, K, stride_xm, stride_xk, BLOCK_M, AMAX_BLOCK)
            inv, sx = _quant_scales(amax, rcp127, SX_RCP)
        else:
            sx = tl.load(sx_ptr + offs_m, mask=mask_m, other=0.0)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    else:
        sx = tl.zeros((BLOCK_M,), dtype=tl.float32)  # unused
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for j in tl.static_range(4):  # plane j: codes 4 kb + j
        offs_k = 4 * offs_kb + j
        a = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                    mask=mask_m[:, None] & (offs_k[None, :] < K), other=0)  # (BLOCK_M, BLOCK_KB)
        c = _plane(bt, j)  # (BLOCK_N, BLOCK_KB) int32
        if INT8:
            if FUSED_QUANT:
                q = _quantize(a.to(tl.float32), inv, USE_LIBDEVICE).to(tl.int32)
            else:
                q = a.to(tl.int32)
            acc += tl.sum(c[None, :, :] * q[:, None, :], axis=2)
        else:
            acc += tl.sum(c.to(tl.float32)[None, :, :] * a.to(tl.float32)[:, None, :], axis=2)
    if ONE_SPLIT:
        _store_tile(acc, sx, offs_m, offs_n, M, N, s_ptr, b_ptr, y_ptr, INT8, PER_ROW, HAS_BIAS)
    else:
        offs_mn = offs_m[:, None] * N + offs_n[None, :]
        mask = mask_m[:, None] & (offs_n[None, :] < N)
        tl.atomic_add(acc_ptr + offs_mn, acc, mask=mask, sem="relaxed")
        tl.debug_barrier()  # every thread's adds before the release below (CUTLASS's semaphore pattern)
        done = tl.atomic_add(cnt_ptr + pid_n, 1, sem="acq_rel")
        if done == tl.num_programs(1) - 1:  # the last split of this column block: every partial sum is in
            if INT8:  # read the sums from L2 and leave zeros
                total = tl.atomic_xchg(acc_ptr + offs_mn, tl.zeros_like(acc), mask=mask, sem="relaxed")
            else:  # (Triton's interpreter has no float exchange) the same as an add of zero and a store
                total = tl.atomic_add(acc_ptr + offs_mn, tl.zeros_like(acc), mask=mask, sem="relaxed")
                tl.store(acc_ptr + offs_mn, tl.zeros_like(acc), mask=mask)
            tl.atomic_xchg(cnt_ptr + pid_n, 0, sem="relaxed")
            _store_tile(total, sx, offs_m, offs_n, M, N, s_ptr, b_ptr, y_ptr, INT8, PER_ROW, HAS_BIAS)


# --------------------------------------------------------------------------- launch configs
def _cfg(bm: int, bn: int, bkb: int, warps: int, stages: int, group_m: int = 8) -> dict[str, int]:
    """A launch configuration; ``bkb`` is the step in packed bytes (4 codes each)."""
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_KB": bkb, "GROUP_M": group_m, "num_warps": warps, "num_stages": stages}


def _next_pow2(v: int) -> int:
    return 1 << max(0, int(v) - 1).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _num_sms(device: torch.device) -> int:
    key = ("sms", device)
    if key not in _STATE:
        try:
            _STATE[key] = int(torch.cuda.get_device_properties(device).multi_processor_count) if device.type == "cuda" else 4
        except Exception:  # noqa: BLE001 - a guess is good enough for tile sizes
            _STATE[key] = 132
    return _STATE[key]


def default_config(m: int, n: int, k: int, kind: str, sms: int = 132, elem_bytes: int = 2) -> dict[str, int]:
    """Tile sizes and launch options for a GEMM of ``m`` tokens; ``kind`` is ``"float"`` or ``"int8"``.

    Small ``m`` (<= 64; memory-bound: the time is reading the packed weight): ``BLOCK_M`` is
    ``m`` rounded up to a power of two (>= 16, what ``tl.dot`` needs), ``BLOCK_N`` the largest of
    64, 32, 16 that still gives at least ``sms`` programs, so that every SM pulls weight bytes,
    and each step reads up to 128 bytes (512 codes) of each weight row (fewer for wide tiles).
    Large ``m``: the largest of 128 x 128, 128 x 64, 64 x 64, 64 x 32 tiles that still gives
    ``sms`` programs, 32 bytes (128 codes) a step. ``elem_bytes``: bytes of an activation
    (float32: smaller tiles; its exact dots run on the FMA units).
    Chosen by hand (register and shared-memory use checked by compiling for sm_90: no spills,
    at most ~140 KiB of shared memory); ``tools/gpu_check.py --sweep`` times others.
    """
    kb = _cdiv(k, 4)
    bkb = min(128, max(32, _next_pow2(kb)))
    if INTERPRET:
        return _cfg(16 if m <= 16 else 32, 32, 32, 4, 1)
    if kind == "float" and elem_bytes > 2:  # float32: exact (non-TF32) dots run on the FMA units; small tiles
        return _cfg(max(16, _next_pow2(m)) if m <= 64 else 64, 16 if m <= 64 else 32, 8, 4, 3)
    if m <= 64:
        bm = max(16, _next_pow2(m))
        grid_m = _cdiv(m, bm)
        bn = next((c for c in (64, 32) if _cdiv(n, c) * grid_m >= sms), 16)
        bkb = min(bkb, 4096 // bn, 4096 // (bm * elem_bytes))  # <= 32 weight bytes a thread, <= 16 KiB of x a stage
        return _cfg(bm, bn, bkb, 4, 3)
    for bm, bn in ((128, 128), (128, 64), (64, 64), (64, 32)):  # the largest tile that fills the SMs
        if _cdiv(m, bm) * _cdiv(n, bn) >= sms:
            break
    return _cfg(bm, bn, 32, 8 if bm * bn >= 128 * 128 else 4, 3)


def _split(cfg: dict[str, int]) -> tuple[dict[str, int], int, int]:
    """(constexpr kwargs, BLOCK_M, BLOCK_N) of a config."""
    meta = {k: cfg[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_KB", "GROUP_M", "num_warps", "num_stages")}
    return meta, cfg["BLOCK_M"], cfg["BLOCK_N"]


GEMV_MAX_M = 16  # the most rows the split-K GEMV kernel takes (BLOCK_M <= 16)
_GEMV_M_DEFAULT = 1  # rows up to which it is chosen automatically (gemv_max_m()); H100: wins at M=1 only
_GEMV_FUSED_QUANT_BYTES = 8192  # int8: quantize inside the GEMV while M * K * elem_bytes is at most this
_GEMV_TILES = ((32, 64), (16, 64), (32, 32), (16, 32), (8, 32), (8, 16))  # (BLOCK_N, BLOCK_KB), largest first


def gemv_config(m: int, n: int, k: int, sms: int = 132) -> dict[str, int]:
    """Tile of the split-K GEMV kernel for ``m`` (<= 16) tokens: ``BLOCK_N`` rows x ``BLOCK_KB`` packed bytes.

    The largest tile of ``_GEMV_TILES`` (at most 8192 products of each 2-bit plane, i.e. 64 a
    thread with 4 warps, so ``BLOCK_M * BLOCK_N * BLOCK_KB <= 8192``) that still gives at least
    four programs per SM; else the smallest. H100 (132 SMs), M = 1: N=3072, K=768 -> 16 x 64
    (192 x 3 = 576 programs); N=768, K=3072 -> 16 x 64 (48 x 12 = 576); N=384, K=1536 -> 8 x 32
    (48 x 12 = 576). One K split a program: every program issues one weight load, so the call
    costs about one DRAM round trip plus the atomics, whatever K is.
    """
    bm = _next_pow2(max(1, m))
    kb = _cdiv(k, 4)
    tiles = [t for t in _GEMV_TILES if bm * t[0] * t[1] <= 8192]
    bn, bkb = tiles[-1]
    for bn_, bkb_ in tiles:
        if _cdiv(n, bn_) * _cdiv(kb, bkb_) >= 4 * sms:
            bn, bkb = bn_, bkb_
            break
    bkb = min(bkb, max(16, _next_pow2(kb)))
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_KB": bkb, "AMAX_BLOCK": min(_next_pow2(k), max(256, 4096 // bm)),
            "num_warps": 4 if bm * bn * bkb >= 4096 else 2}


def gemv_max_m() -> int:
    """Largest number of tokens for which the split-K GEMV kernel is chosen automatically (default 1).

    ``TERNLIB_TRITON_GEMV_M`` (read once) or :func:`set_gemv_max_m` changes it; 0 switches the
    GEMV off (the tiled ``tl.dot`` kernels then take every small-M call); at most 16.
    """
    v = _STATE.get("gemv_m")
    if v is None:
        env = os.environ.get("TERNLIB_TRITON_GEMV_M", "").strip()
        v = _STATE["gemv_m"] = min(GEMV_MAX_M, max(0, int(env))) if env else _GEMV_M_DEFAULT
    return v


def set_gemv_max_m(tokens: int | None) -> None:
    """Set :func:`gemv_max_m` for this process (``None``: the environment variable or the default again)."""
    if tokens is None:
        _STATE.pop("gemv_m", None)
    else:
        _STATE["gemv_m"] = min(GEMV_MAX_M, max(0, int(tokens)))


# --------------------------------------------------------------------------- quantization probe
def quantization_arithmetic(device: torch.device) -> str | None:
    """How :func:`~ternlib.kernels.quantize_activations` computes its scale on ``device``, probed once.

    The reference spells it out as ``amax * float32(1/127)``, so this is ``"rcp"`` wherever PyTorch
    multiplies as IEEE says; ``"div"`` (a true division ``amax / 127``) is kept for references that
    divide. ``None`` if neither matches: the int8 kernel then quantizes with PyTorch and only the
    GEMM runs in Triton. (``inv = reciprocal(amax) * 127`` is the same in every case.)
    """
    key = f"quant:{device}"
    if key not in _STATE:
        from .kernels import quantize_activations

        g = torch.Generator().manual_seed(0)
        a = torch.rand(1 << 14, generator=g) * torch.exp2(torch.randint(-20, 20, (1 << 14,), generator=g).float())
        a = a.to(device)
        _, s = quantize_activations(a[:, None])
        s = s.reshape(-1)
        if torch.equal(s, a * torch.tensor(_rcp127(), device=device)):
            _STATE[key] = "rcp"
        elif torch.equal(s, a / torch.full_like(a, 127.0)):
            _STATE[key] = "div"
        else:
            _STATE[key] = None
    return _STATE[key]


def _rcp127() -> float:
    """float32(1/127) as PyTorch's CUDA division computes it (a Python float holding that value)."""
    if "rcp127" not in _STATE:
        _STATE["rcp127"] = float(torch.tensor(1.0) / torch.tensor(127.0))
    return _STATE["rcp127"]


# --------------------------------------------------------------------------- launchers
def _make_weight(w: PackedTernary) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(packed bytes with unit column stride, float32 scales (1,) or (N,), per-row scales?)."""
    packed = w.packed if w.packed.stride(-1) == 1 else w.packed.contiguous()
    return packed, w.scales.reshape(-1).float().contiguous(), w.scales.numel() != 1


def _plan(w: PackedTernary, key: tuple, make) -> Any:
    """A per-layer launch plan (tile sizes, weight tensors), made once per key while the weight is unchanged."""
    return w.cached(key, make)  # type: ignore[arg-type]  # any hashable key works


def float_matmul(x2: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None, *, packed: bool = True,
                 config: dict[str, int] | None = None, method: str | None = None) -> torch.Tensor:
    """``(x2 @ codes^T) * scale + bias`` for ``x2`` ``(M, K)``, in ``x2.dtype``.

    ``packed``: a Triton kernel on the 2-bit buffer (``triton_packed``); otherwise cuBLAS on
    the weight dequantized to ``x2.dtype`` and cached (bit for bit what the reference computes).
    ``method`` (packed): ``"gemv"`` (the split-K GEMV, ``M <= 16``) or ``"tile"`` (the ``tl.dot``
    kernel); default ``"gemv"`` for ``M <=`` :func:`gemv_max_m` unless a ``config`` (a tile of
    the ``tl.dot`` kernel) is given. ``config`` applies to the method used.
    """
    _load()
    m, k = x2.shape
    n = w.shape[0]
    if not packed:
        weight = w.cached(("dequantized", x2.dtype), lambda: w.dequantize().to(x2.dtype))  # (N, K)
        return F.linear(x2, weight, None if bias is None else bias.to(x2.dtype))
    if method is None:
        method = "gemv" if config is None and m <= gemv_max_m() else "tile"
    if method == "gemv":
        return gemv_matmul(x2, w, bias, int8=False, config=config)
    if method != "tile":
        raise ValueError(f"unknown float method {method!r}; expected 'gemv' or 'tile'")
    y = torch.empty(m, n, device=x2.device, dtype=x2.dtype)  # (M, N)
    if m == 0:
        return y
    if config is None:
        bucket = _next_pow2(m)  # the configuration depends on M only through this

        def make():
            pk, s, per_row = _make_weight(w)
            meta, bm, bn = _split(default_config(bucket, n, k, "float", _num_sms(x2.device), x2.element_size()))
            kw = dict(meta, PER_ROW=per_row, IEEE=x2.dtype == torch.float32)
            return pk, s, kw, bm, bn, _cdiv(n, bn)

        pk, s, kw, bm, bn, grid_n = _plan(w, ("float", bucket, x2.dtype), make)
    else:
        pk, s, per_row = _make_weight(w)
        meta, bm, bn = _split(config)
        kw = dict(meta, PER_ROW=per_row, IEEE=x2.dtype == torch.float32)
        grid_n = _cdiv(n, bn)
    _float_kernel[(_cdiv(m, bm) * grid_n,)](
        x2, pk, s, y if bias is None else bias, y, m, n, k, pk.shape[1], x2.stride(0), x2.stride(1), pk.stride(0),
        HAS_BIAS=bias is not None, **kw)
    return y


def quantize(x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~ternlib.kernels.quantize_activations` of ``x2`` ``(M, K)`` in one launch: q ``(M, K)`` int8, sx ``(M,)``.

    Falls back to PyTorch where :func:`quantization_arithmetic` finds no match.
    """
    _load()
    mode = quantization_arithmetic(x2.device)
    if mode is None:
        q, sx = quantize_activations(x2)
        return q, sx.reshape(-1)
    m, k = x2.shape
    q = torch.empty(m, k, device=x2.device, dtype=torch.int8)  # (M, K)
    sx = torch.empty(m, device=x2.device, dtype=torch.float32)  # (M,)
    if m == 0:
        return q, sx
    rows, bk = (4, 64) if INTERPRET else (4, min(1024, _next_pow2(k)))
    _quant_kernel[(_cdiv(m, rows),)](
        x2, q, sx, m, k, x2.stride(0), x2.stride(1), q.stride(0), _rcp127(),
        SX_RCP=mode == "rcp", USE_LIBDEVICE=not INTERPRET, BLOCK_M=rows, BLOCK_K=bk, num_warps=4,
        enable_fp_fusion=False)
    return q, sx


def int_mm_eligible(x2: torch.Tensor, n: int) -> bool:
    """Whether ``torch._int_mm`` takes this product (more than 16 rows, K and N multiples of 8)."""
    m, k = x2.shape
    return m > 16 and k % 8 == 0 and n % 8 == 0 and (x2.is_cuda or INTERPRET)


def int8_matmul(x2: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None, *, method: str | None = None,
                config: dict[str, int] | None = None) -> torch.Tensor:
    """The exact int8-activation product of ``x2`` ``(M, K)`` and ``w``, in ``x2.dtype``.

    ``method``: ``"gemv"`` (the split-K GEMV, quantization fused into it while ``M * K * elem_bytes
    <= 8192``, else a launch of its own; the default for ``M <=`` :func:`gemv_max_m`),
    ``"gemv_fused"`` / ``"gemv_q"`` (the GEMV with the quantization forced inside / outside),
    ``"fused"`` (one launch, tiled ``tl.dot``; the default up to ``crossover()``), ``"split"`` or
    ``"int_mm"`` (see the module docstring); by default at large ``M`` the faster of the last two,
    measured once (:func:`large_int8_method`). ``config`` applies to the Triton GEMM of the
    method (a tile of the ``tl.dot`` kernels unless a GEMV method is named).
    """
    _load()
    m, k = x2.shape
    n = w.shape[0]
    if method is None:
        if m <= gemv_max_m() and config is None:
            method = "gemv"
        else:
            method = "fused" if m <= crossover() else large_int8_method(x2, w, bias)
    if method in GEMV_INT8_METHODS:
        fq = {"gemv": None, "gemv_fused": True, "gemv_q": False}[method]
        return gemv_matmul(x2, w, bias, int8=True, fused_quant=fq, config=config)
    if method not in ("fused", "split", "int_mm"):
        raise ValueError(f"unknown int8 method {method!r}; expected one of {GEMV_INT8_METHODS} or 'fused', "
                         "'split', 'int_mm'")
    y = torch.empty(m, n, device=x2.device, dtype=x2.dtype)  # (M, N)
    if m == 0:
        return y
    mode = quantization_arithmetic(x2.device)
    if method == "int_mm":
        if not int_mm_eligible(x2, n):
            raise ValueError(f"torch._int_mm does not take M={m}, K={k}, N={n} (needs M > 16, K and N multiples of 8)")
        _, s, per_row = _plan(w, ("int8_weight",), lambda: _make_weight(w))
        codes = w.cached("int8_codes_kn", lambda: w.codes().t())  # (K, N) view of (N, K): column-major
        q, sx = quantize(x2)
        acc = torch._int_mm(q, codes)  # (M, N) int32
        bm, bn = (32, 32) if INTERPRET else (32, 128)
        _epilogue_kernel[(_cdiv(m, bm), _cdiv(n, bn))](
            acc, sx, s, y if bias is None else bias, y, m, n, PER_ROW=per_row, HAS_BIAS=bias is not None,
            BLOCK_M=bm, BLOCK_N=bn, num_warps=4, enable_fp_fusion=False)
        return y
    fused = method == "fused" and mode is not None
    if config is None:
        bucket = _next_pow2(m)  # the configuration depends on M only through this

        def make():
            pk, s, per_row = _make_weight(w)
            meta, bm, bn = _split(default_config(bucket, n, k, "int8", _num_sms(x2.device), x2.element_size()))
            return pk, s, dict(meta, PER_ROW=per_row, USE_LIBDEVICE=not INTERPRET, enable_fp_fusion=False), bm, bn, _cdiv(n, bn)

        pk, s, kw, bm, bn, grid_n = _plan(w, ("int8", bucket), make)
    else:
        pk, s, per_row = _make_weight(w)
        meta, bm, bn = _split(config)
        kw = dict(meta, PER_ROW=per_row, USE_LIBDEVICE=not INTERPRET, enable_fp_fusion=False)
        grid_n = _cdiv(n, bn)
    if fused:
        a, sx = x2, y  # sx_ptr unused
    else:
        a, sx = quantize(x2)  # (M, K) int8, (M,) float32
    _int8_kernel[(_cdiv(m, bm) * grid_n,)](
        a, sx, pk, s, y if bias is None else bias, y, m, n, k, pk.shape[1], a.stride(0), a.stride(1), pk.stride(0),
        _rcp127(),
        FUSED_QUANT=fused, SX_RCP=mode == "rcp", HAS_BIAS=bias is not None, **kw)
    return y


def _gemv_plan(w: PackedTernary, x2: torch.Tensor, int8: bool, bm: int, config: dict[str, int] | None,
               fresh: bool) -> tuple:
    """(packed, scales, grid, acc scratch, counters, constexpr kwargs) of the GEMV kernel.

    The scratch (``(bm, N)`` float32 or int32, and one int32 counter per column block) starts at
    zero and the kernel leaves it at zero, so a plan kept with the layer serves every call on
    the stream that uses it (calls on one stream run in order). ``fresh``: scratch of its own.
    """
    n, k = w.shape
    pk, s, per_row = _make_weight(w)
    cfg = dict(config) if config is not None else gemv_config(bm, n, k, _num_sms(x2.device))
    cfg["BLOCK_M"] = bm = max(bm, cfg.get("BLOCK_M", 1))
    cfg.setdefault("AMAX_BLOCK", min(_next_pow2(k), max(256, 4096 // bm)))
    cfg.setdefault("num_warps", 4)
    grid = (_cdiv(n, cfg["BLOCK_N"]), _cdiv(pk.shape[1], cfg["BLOCK_KB"]))
    one = grid[1] == 1
    acc = torch.zeros(0 if one else bm, n, device=x2.device, dtype=torch.int32 if int8 else torch.float32)
    cnt = torch.zeros(0 if one else grid[0], device=x2.device, dtype=torch.int32)
    kw = dict(BLOCK_M=bm, BLOCK_N=cfg["BLOCK_N"], BLOCK_KB=cfg["BLOCK_KB"], AMAX_BLOCK=cfg["AMAX_BLOCK"],
              num_warps=cfg["num_warps"], INT8=int8, PER_ROW=per_row, ONE_SPLIT=one, USE_LIBDEVICE=not INTERPRET)
    if int8:
        kw["enable_fp_fusion"] = False
    return pk, s, grid, acc, cnt, kw


def gemv_matmul(x2: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None, *, int8: bool | None = None,
                fused_quant: bool | None = None, config: dict[str, int] | None = None) -> torch.Tensor:
    """The split-K GEMV (``_gemv_kernel``) for ``x2`` ``(M, K)``, ``M <= GEMV_MAX_M``, in ``x2.dtype``.

    ``int8`` (default: ``w.activations == "int8"``): the exact int8-activation product, bit for
    bit the reference; otherwise the float product of ``triton_packed`` (to rounding).
    ``fused_quant`` (int8): quantize inside the GEMV (one launch; every program reads the M rows
    whole for their amax) or in a launch of its own first; default: fused while ``M * K *
    elem_bytes <= 8192``. ``config``: a tile (keys ``BLOCK_N``, ``BLOCK_KB``, optional
    ``num_warps``); with one the scratch buffer is allocated for the call.
    """
    _load()
    m, k = x2.shape
    n = w.shape[0]
    if int8 is None:
        int8 = w.activations == "int8"
    if m > GEMV_MAX_M:
        raise ValueError(f"the GEMV kernel takes at most {GEMV_MAX_M} rows, got {m}")
    y = torch.empty(m, n, device=x2.device, dtype=x2.dtype)  # (M, N), fresh: the caller keeps it
    if m == 0:
        return y
    bm = _next_pow2(m)
    if config is None:
        pk, s, grid, acc, cnt, kw = _plan(w, ("gemv", int8, bm, x2.device),
                                          lambda: _gemv_plan(w, x2, int8, bm, None, False))
    else:
        pk, s, grid, acc, cnt, kw = _gemv_plan(w, x2, int8, bm, config, True)
    if int8:
        mode = quantization_arithmetic(x2.device)
        if fused_quant is None:
            fused_quant = m * k * x2.element_size() <= _GEMV_FUSED_QUANT_BYTES
        fused_quant = fused_quant and mode is not None
        if fused_quant:
            a, sx = x2, y  # sx_ptr unused
        else:
            a, sx = quantize(x2)  # (M, K) int8, (M,) float32
        _gemv_kernel[grid](
            a, sx, pk, s, y if bias is None else bias, y, acc, cnt, m, n, k, pk.shape[1], a.stride(0), a.stride(1),
            pk.stride(0), _rcp127(), FUSED_QUANT=fused_quant, SX_RCP=mode == "rcp", HAS_BIAS=bias is not None, **kw)
    else:
        _gemv_kernel[grid](
            x2, y, pk, s, y if bias is None else bias, y, acc, cnt, m, n, k, pk.shape[1], x2.stride(0), x2.stride(1),
            pk.stride(0), 1.0, FUSED_QUANT=False, SX_RCP=True, HAS_BIAS=bias is not None, **kw)
    return y


# --------------------------------------------------------------------------- large-M int8 method
def _m_bucket(m: int) -> int:
    return _next_pow2(m)


def large_int8_method(x2: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None) -> str:
    """``"split"`` or ``"int_mm"`` for a large-``M`` int8 call: the faster one, measured once.

    ``TERNLIB_TRITON_INT8_LARGE=split|int_mm`` forces one (``int_mm`` only where it is eligible).
    The measurement (three timed calls of each, CUDA events) happens on the first call of each
    (device, dtype, N, K, power-of-two bucket of M, scale kind, bias) and never during CUDA graph
    capture (then ``int_mm``, uncached). Both methods are exact, so the choice changes no result.
    """
    n, k = w.shape
    forced = os.environ.get("TERNLIB_TRITON_INT8_LARGE", "").strip()
    eligible = int_mm_eligible(x2, n)
    if forced in LARGE_INT8_METHODS:
        return forced if (forced == "split" or eligible) else "split"
    if not eligible or not x2.is_cuda:
        return "split"
    key = (x2.device, x2.dtype, n, k, _m_bucket(x2.shape[0]), w.scales.numel() != 1, bias is not None)
    choice = _CHOICES.get(key)
    if choice is not None:
        return choice
    if torch.cuda.is_current_stream_capturing():
        return "int_mm"
    times: dict[str, float] = {}
    errors: dict[str, str] = {}
    for method in LARGE_INT8_METHODS:
        try:
            times[method] = _time_call(lambda: int8_matmul(x2, w, bias, method=method))
        except Exception as e:  # noqa: BLE001 - a method that fails here is not chosen
            errors[method] = f"{type(e).__name__}: {str(e)[:200]}"
    choice = min(times, key=times.get) if times else "int_mm"
    _CHOICES[key] = choice
    _TUNING_LOG.append({"M": x2.shape[0], "N": n, "K": k, "dtype": str(x2.dtype).split(".")[-1], "choice": choice,
                        "us": {k_: round(v * 1e3, 2) for k_, v in times.items()}, "errors": errors})
    return choice


def _time_call(fn, reps: int = 3) -> float:
    """Milliseconds a call of ``fn`` takes on the current CUDA stream (after two warm-up calls)."""
    fn()
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def tuning_log() -> list[dict]:
    """The large-``M`` int8 measurements made so far in this process (what was timed, what was chosen)."""
    return list(_TUNING_LOG)


# --------------------------------------------------------------------------- dispatch
def _capable(device: torch.device) -> bool:
    key = ("cap", device)
    cap = _STATE.get(key)
    if cap is None:
        cap = _STATE[key] = torch.cuda.get_device_capability(device) >= (8, 0)
    return cap


def _supported(x: torch.Tensor, w: PackedTernary) -> bool:
    """Device, dtype and layout checks shared by both kernels (cheap; False on CPU unless INTERPRET)."""
    if x.dtype not in _DTYPES or w.packing != "2bit" or w.group_size is not None:
        return False
    n, k = w.shape
    if x.is_cuda:
        dev = x.device
        if w.packed.device != dev or w.scales.device != dev or not _capable(dev):
            return False
    elif not (INTERPRET and x.device.type == "cpu" and w.packed.device.type == "cpu" and w.scales.device.type == "cpu"):
        return False
    return n > 0 and k > 0 and w.scales.numel() in (1, n) and _load()


def _tokens(x: torch.Tensor, w: PackedTernary) -> int:
    return x.numel() // max(w.shape[1], 1)


def _supports_packed(x: torch.Tensor, w: PackedTernary) -> bool:
    return w.activations == "float" and _tokens(x, w) <= crossover() and _supported(x, w)


def _supports_int8(x: torch.Tensor, w: PackedTernary) -> bool:
    return (w.activations == "int8" or _tokens(x, w) > crossover()) and _supported(x, w)


@register_kernel("triton_packed", priority=30, supports=_supports_packed)
def triton_packed_kernel(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None) -> torch.Tensor:
    """Small-M GPU kernel on the 2-bit codes, float activations (matches the reference to rounding)."""
    n, k = w.shape
    y = float_matmul(x.reshape(-1, k), w, bias, packed=True)  # (M, N)
    return y.reshape(*x.shape[:-1], n)


@register_kernel("triton_int8", priority=25, supports=_supports_int8)
def triton_int8_kernel(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None) -> torch.Tensor:
    """GPU kernel for int8 activations (exact against the reference); float activations at large M (cuBLAS)."""
    n, k = w.shape
    x2 = x.reshape(-1, k)  # (M, K)
    if w.activations == "int8":
        y = int8_matmul(x2, w, bias)
    else:
        y = float_matmul(x2, w, bias, packed=False)
    return y.reshape(*x.shape[:-1], n)

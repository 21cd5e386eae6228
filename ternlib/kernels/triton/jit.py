"""The Triton kernels of :mod:`ternlib.kernels.triton`, compiled on first use.

The functions marked ``@_jit`` below are plain Python until :func:`load` imports triton and
replaces each of them, in this module's namespace, by its ``triton.jit`` version. Triton resolves
the names a kernel calls (the helpers, ``tl``, ``libdevice``) through the kernel's module globals,
so the helpers live here beside the kernels, and launchers reach a kernel as ``jit.<name>`` after
``jit.load()``. The kernels meant to be launched from elsewhere have public names
(``float_kernel``, ``quant_kernel``, ``int8_kernel``, ``epilogue_kernel``, ``gemv_kernel``).
"""
from __future__ import annotations

import os
import threading
from typing import Any

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"  # Triton's NumPy interpreter: CPU tensors allowed

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}  # "triton": module | None, "error": str
_JIT_NAMES: list[str] = []

triton: Any = None  # the modules, bound by load() on first use
tl: Any = None
libdevice: Any = None


def _jit(fn):
    """Mark ``fn`` as a Triton kernel; it is compiled with ``triton.jit`` by :func:`load`."""
    _JIT_NAMES.append(fn.__name__)
    return fn


def load() -> bool:
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
def float_kernel(x_ptr, w_ptr, s_ptr, b_ptr, y_ptr, M, N, K, KB, stride_xm, stride_xk, stride_wn,
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
def quant_kernel(x_ptr, q_ptr, sx_ptr, M, K, stride_xm, stride_xk, stride_qm, rcp127,
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
def int8_kernel(x_ptr, sx_ptr, w_ptr, s_ptr, b_ptr, y_ptr, M, N, K, KB, stride_xm, stride_xk, stride_wn, rcp127,
                 FUSED_QUANT: tl.constexpr, SX_RCP: tl.constexpr, USE_LIBDEVICE: tl.constexpr,
                 PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KB: tl.constexpr, GROUP_M: tl.constexpr):
    """y = float32(q @ codes^T) * (sx[m] * sw[n]) + b[n] (y contiguous (M, N)). Launch with enable_fp_fusion=False.

    FUSED_QUANT: q and sx computed here from float x; otherwise x_ptr is the int8 q and sx_ptr
    the float32 sx of quant_kernel.
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
def epilogue_kernel(acc_ptr, sx_ptr, s_ptr, b_ptr, y_ptr, M, N, PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr,
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
def gemv_kernel(x_ptr, sx_ptr, w_ptr, s_ptr, b_ptr, y_ptr, acc_ptr, cnt_ptr, M, N, K, KB,
                 stride_xm, stride_xk, stride_wn, rcp127,
                 INT8: tl.constexpr, FUSED_QUANT: tl.constexpr, SX_RCP: tl.constexpr, USE_LIBDEVICE: tl.constexpr,
                 PER_ROW: tl.constexpr, HAS_BIAS: tl.constexpr, ONE_SPLIT: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KB: tl.constexpr, AMAX_BLOCK: tl.constexpr):
    """Split-K GEMV, grid (cdiv(N, BLOCK_N), cdiv(KB, BLOCK_KB)); all M <= BLOCK_M rows in every program.

    float (INT8 False): x float, float32 products and sums, the epilogue of float_kernel.
    INT8: FUSED_QUANT -- x float, every program computes the amax of the M rows over all of K and
    quantizes its own chunk (_row_amax, _quant_scales, _quantize: the arithmetic of quant_kernel);
    otherwise x_ptr is the int8 q and sx_ptr the float32 sx of quant_kernel. Exact int32 sums,
    the epilogue of int8_kernel. Launch with enable_fp_fusion=False.
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

"""Launchers of the Triton kernels, the large-M int8 method choice, and the registered kernels.

``triton_packed`` and ``triton_int8`` register here (see :mod:`ternlib.kernels.triton` for the
design). Every launcher calls :func:`~ternlib.kernels.triton.jit.load` first, then launches
``jit.<kernel>``; :func:`quantization_arithmetic` probes once per device how PyTorch computes the
activation scale, so the kernels can reproduce it bit for bit.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F

from ...activations import quantize_activations
from ..registry import PackedTernary, crossover, register_kernel
from . import jit
from .configs import (
    GEMV_FUSED_QUANT_BYTES,
    GEMV_MAX_M,
    cdiv,
    default_config,
    gemv_config,
    gemv_max_m,
    next_pow2,
    num_sms,
    split_config,
)
from .jit import INTERPRET

_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_STATE: dict[Any, Any] = {}  # per-device probes: ("cap", device), "quant:<device>", "rcp127"
_CHOICES: dict[tuple, str] = {}  # large-M int8 method measured per (device, dtype, N, K, M bucket, ...)
_TUNING_LOG: list[dict] = []  # what those measurements saw (tuning_log())
LARGE_INT8_METHODS = ("split", "int_mm")
GEMV_INT8_METHODS = ("gemv", "gemv_fused", "gemv_q")


# --------------------------------------------------------------------------- quantization probe
def quantization_arithmetic(device: torch.device) -> str | None:
    """How :func:`~ternlib.activations.quantize_activations` computes its scale on ``device``, probed once.

    The reference spells it out as ``amax * float32(1/127)``, so this is ``"rcp"`` wherever PyTorch
    multiplies as IEEE says; ``"div"`` (a true division ``amax / 127``) is kept for references that
    divide. ``None`` if neither matches: the int8 kernel then quantizes with PyTorch and only the
    GEMM runs in Triton. (``inv = reciprocal(amax) * 127`` is the same in every case.)
    """
    key = f"quant:{device}"
    if key not in _STATE:
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
    jit.load()
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
        bucket = next_pow2(m)  # the configuration depends on M only through this

        def make():
            pk, s, per_row = _make_weight(w)
            meta, bm, bn = split_config(default_config(bucket, n, k, "float", num_sms(x2.device), x2.element_size()))
            kw = dict(meta, PER_ROW=per_row, IEEE=x2.dtype == torch.float32)
            return pk, s, kw, bm, bn, cdiv(n, bn)

        pk, s, kw, bm, bn, grid_n = _plan(w, ("float", bucket, x2.dtype), make)
    else:
        pk, s, per_row = _make_weight(w)
        meta, bm, bn = split_config(config)
        kw = dict(meta, PER_ROW=per_row, IEEE=x2.dtype == torch.float32)
        grid_n = cdiv(n, bn)
    jit.float_kernel[(cdiv(m, bm) * grid_n,)](
        x2, pk, s, y if bias is None else bias, y, m, n, k, pk.shape[1], x2.stride(0), x2.stride(1), pk.stride(0),
        HAS_BIAS=bias is not None, **kw)
    return y


def quantize(x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`quantize_activations` of ``x2`` ``(M, K)`` in one launch: q ``(M, K)`` int8, sx ``(M,)``.

    Falls back to PyTorch where :func:`quantization_arithmetic` finds no match.
    """
    jit.load()
    mode = quantization_arithmetic(x2.device)
    if mode is None:
        q, sx = quantize_activations(x2)
        return q, sx.reshape(-1)
    m, k = x2.shape
    q = torch.empty(m, k, device=x2.device, dtype=torch.int8)  # (M, K)
    sx = torch.empty(m, device=x2.device, dtype=torch.float32)  # (M,)
    if m == 0:
        return q, sx
    rows, bk = (4, 64) if INTERPRET else (4, min(1024, next_pow2(k)))
    jit.quant_kernel[(cdiv(m, rows),)](
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
    jit.load()
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
        jit.epilogue_kernel[(cdiv(m, bm), cdiv(n, bn))](
            acc, sx, s, y if bias is None else bias, y, m, n, PER_ROW=per_row, HAS_BIAS=bias is not None,
            BLOCK_M=bm, BLOCK_N=bn, num_warps=4, enable_fp_fusion=False)
        return y
    fused = method == "fused" and mode is not None
    if config is None:
        bucket = next_pow2(m)  # the configuration depends on M only through this

        def make():
            pk, s, per_row = _make_weight(w)
            meta, bm, bn = split_config(default_config(bucket, n, k, "int8", num_sms(x2.device), x2.element_size()))
            kw = dict(meta, PER_ROW=per_row, USE_LIBDEVICE=not INTERPRET, enable_fp_fusion=False)
            return pk, s, kw, bm, bn, cdiv(n, bn)

        pk, s, kw, bm, bn, grid_n = _plan(w, ("int8", bucket), make)
    else:
        pk, s, per_row = _make_weight(w)
        meta, bm, bn = split_config(config)
        kw = dict(meta, PER_ROW=per_row, USE_LIBDEVICE=not INTERPRET, enable_fp_fusion=False)
        grid_n = cdiv(n, bn)
    if fused:
        a, sx = x2, y  # sx_ptr unused
    else:
        a, sx = quantize(x2)  # (M, K) int8, (M,) float32
    jit.int8_kernel[(cdiv(m, bm) * grid_n,)](
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
    cfg = dict(config) if config is not None else gemv_config(bm, n, k, num_sms(x2.device))
    cfg["BLOCK_M"] = bm = max(bm, cfg.get("BLOCK_M", 1))
    cfg.setdefault("AMAX_BLOCK", min(next_pow2(k), max(256, 4096 // bm)))
    cfg.setdefault("num_warps", 4)
    grid = (cdiv(n, cfg["BLOCK_N"]), cdiv(pk.shape[1], cfg["BLOCK_KB"]))
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
    """The split-K GEMV (``jit.gemv_kernel``) for ``x2`` ``(M, K)``, ``M <= GEMV_MAX_M``, in ``x2.dtype``.

    ``int8`` (default: ``w.activations == "int8"``): the exact int8-activation product, bit for
    bit the reference; otherwise the float product of ``triton_packed`` (to rounding).
    ``fused_quant`` (int8): quantize inside the GEMV (one launch; every program reads the M rows
    whole for their amax) or in a launch of its own first; default: fused while ``M * K *
    elem_bytes <= 8192``. ``config``: a tile (keys ``BLOCK_N``, ``BLOCK_KB``, optional
    ``num_warps``); with one the scratch buffer is allocated for the call.
    """
    jit.load()
    m, k = x2.shape
    n = w.shape[0]
    if int8 is None:
        int8 = w.activations == "int8"
    if m > GEMV_MAX_M:
        raise ValueError(f"the GEMV kernel takes at most {GEMV_MAX_M} rows, got {m}")
    y = torch.empty(m, n, device=x2.device, dtype=x2.dtype)  # (M, N), fresh: the caller keeps it
    if m == 0:
        return y
    bm = next_pow2(m)
    if config is None:
        pk, s, grid, acc, cnt, kw = _plan(w, ("gemv", int8, bm, x2.device),
                                          lambda: _gemv_plan(w, x2, int8, bm, None, False))
    else:
        pk, s, grid, acc, cnt, kw = _gemv_plan(w, x2, int8, bm, config, True)
    if int8:
        mode = quantization_arithmetic(x2.device)
        if fused_quant is None:
            fused_quant = m * k * x2.element_size() <= GEMV_FUSED_QUANT_BYTES
        fused_quant = fused_quant and mode is not None
        if fused_quant:
            a, sx = x2, y  # sx_ptr unused
        else:
            a, sx = quantize(x2)  # (M, K) int8, (M,) float32
        jit.gemv_kernel[grid](
            a, sx, pk, s, y if bias is None else bias, y, acc, cnt, m, n, k, pk.shape[1], a.stride(0), a.stride(1),
            pk.stride(0), _rcp127(), FUSED_QUANT=fused_quant, SX_RCP=mode == "rcp", HAS_BIAS=bias is not None, **kw)
    else:
        jit.gemv_kernel[grid](
            x2, y, pk, s, y if bias is None else bias, y, acc, cnt, m, n, k, pk.shape[1], x2.stride(0), x2.stride(1),
            pk.stride(0), 1.0, FUSED_QUANT=False, SX_RCP=True, HAS_BIAS=bias is not None, **kw)
    return y


# --------------------------------------------------------------------------- large-M int8 method
def _m_bucket(m: int) -> int:
    return next_pow2(m)


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
    return n > 0 and k > 0 and w.scales.numel() in (1, n) and jit.load()


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

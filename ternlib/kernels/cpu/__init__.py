"""Fast CPU kernels for frozen ternary layers, registered beside the reference kernel.

Two kernels, picked by the number of tokens ``M`` in a call (see :func:`ternlib.kernels.crossover`):

- ``cpu_packed`` (small ``M``): a C++ extension (``csrc/ternary_cpu.cpp``, compiled on first use
  with ``torch.utils.cpp_extension``; AVX-512 VNNI, AVX2 or scalar, chosen at run time) reads
  the 2-bit codes directly, so a layer's weight stays at 2 bits in the cache. Activations are
  quantized per token to int8 (``activations="int8"``) or kept in float32. Its weight layouts:
  ``rows16`` (:func:`to_rows16`; register tiles of 32 rows x 12 tokens, no horizontal sums) for int8
  activations on AVX-512 VNNI, ``rows8`` (:func:`to_rows8`; the same idea in 256-bit registers, 16 rows x 4
  tokens) for int8 on AVX2, ``planes128`` (:func:`to_planes128`) for float activations and for int8 on
  scalar CPUs. Each is made on first use and kept (2 bits a weight).
- ``cpu_unpacked`` (large ``M``): the codes are unpacked once, on first use, and kept beside
  the packed buffer (never re-unpacked per call). With ``activations="int8"`` they become an int8
  matrix (1 byte a weight) for PyTorch's int8 GEMM (``torch._int_mm``, oneDNN), followed by the
  scales (where that GEMM is PyTorch's slow scalar fallback, on CPUs without AVX-512 VNNI or AMX,
  ``cpu_packed`` takes int8 calls of every size instead: :func:`int_mm_fast`); with float
  activations the dequantized weight in the input's dtype for ``F.linear``, exactly the
  reference's computation: FP32's speed for float32 inputs (4 bytes a weight), bf16's for a model
  cast to bf16 (``model.to(torch.bfloat16)``: 2 bytes a weight, oneDNN's bf16 GEMM).
  Int8 activations are the fast choice at large batch.

Inputs in bf16 or fp16 (a model cast to that dtype) run the packed kernel and the int8 path in
float32 and return the input's dtype; a layer's scales stay float32 through such casts.

If the extension cannot be built (no compiler, no ``ninja``), ``cpu_packed`` reports itself
unavailable with one warning and the dispatch falls back to the next kernel.

Example:
    >>> import torch
    >>> from ternlib import TernaryConfig, ternarize
    >>> from ternlib.kernels import PackedTernary, ternary_linear
    >>> cfg = TernaryConfig(activations="int8")
    >>> t = ternarize(torch.randn(64, 200), cfg)
    >>> w = PackedTernary.from_codes(t.codes, t.scales, cfg)
    >>> x = torch.randn(3, 200)
    >>> fast = ternary_linear(x, w)                          # picks cpu_packed where it builds
    >>> torch.equal(fast, ternary_linear(x, w, kernel="reference"))   # integer path: exact
    True
"""
from __future__ import annotations

import functools
import os
import threading
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ...activations import quantize_activations
from ..registry import PackedTernary, crossover, register_kernel

_SRC = Path(__file__).with_name("csrc") / "ternary_cpu.cpp"
_EXT = None
_EXT_ERROR: str | None = None
_LOCK = threading.Lock()

BLOCK = 128  # codes per 32-byte block of the planes128 layout


def extension():
    """The compiled C++ extension, or ``None`` (with one warning) where it cannot be built.

    Set ``TERNLIB_NO_EXTENSION=1`` to skip it. Builds go to ``TORCH_EXTENSIONS_DIR``
    (default ``~/.cache/torch_extensions``) and are reused while the source is unchanged.
    """
    global _EXT, _EXT_ERROR
    if _EXT is not None or _EXT_ERROR is not None:
        return _EXT
    with _LOCK:
        if _EXT is not None or _EXT_ERROR is not None:
            return _EXT
        if os.environ.get("TERNLIB_NO_EXTENSION"):
            _EXT_ERROR = "disabled by TERNLIB_NO_EXTENSION"
            return None
        import logging

        log = logging.getLogger("torch.utils.cpp_extension")  # "No CUDA runtime is found", compiler checks
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            from torch.utils.cpp_extension import load

            _EXT = load(
                name="ternlib_ternary_cpu",
                sources=[str(_SRC)],
                extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off"],
                extra_ldflags=["-fopenmp"],
                verbose=False,
            )
        except Exception as e:  # no compiler, no ninja, unsupported platform, ...
            _EXT_ERROR = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
            hint = " (pip install ninja)" if "ninja is required" in str(e).lower() else ""
            # one line, whatever the platform: a file name with no source behind it prints no code line
            warnings.warn_explicit(
                f"the C++ CPU kernel could not be built{hint}; the PyTorch kernels run instead (same "
                f"results, slower at small batch). Cause: {_EXT_ERROR}",
                RuntimeWarning, filename="ternlib", lineno=0, module="ternlib.kernels.cpu")
        finally:
            log.setLevel(level)
    return _EXT


def extension_error() -> str | None:
    """Why the extension is unavailable (``None`` if it loaded or was not tried yet)."""
    return _EXT_ERROR


def isa() -> str:
    """The instruction set the packed kernel uses here: ``avx512-vnni``, ``avx2``, ``scalar`` or ``none``."""
    ext = extension()
    return "none" if ext is None else ("scalar", "avx2", "avx512-vnni")[ext.isa_level()]


@functools.cache
def int_mm_fast() -> bool:
    """Whether PyTorch's int8 GEMM (``torch._int_mm``) is a real kernel on this CPU, decided once per process.

    On CPUs with AVX-512 VNNI (or AMX) it is oneDNN's int8 GEMM, about twice FP32's speed. Elsewhere (AVX2 only:
    AMD Zen 3 and older, most laptops) it is PyTorch's scalar fallback, 15-76x *slower* than FP32 on a 2-core AMD
    EPYC Zen 3 (``experiments/int_mm_fallback.py``, ``book/artifacts/kernels/int_mm_fallback.json``). There
    ``cpu_packed`` (the C++ kernel, AVX2) takes int8 calls of every size, and ``cpu_unpacked`` sums the same
    integer products in a float GEMM (exact, see :func:`int8_products`). Timed here on one small product against
    FP32 ``F.linear``: a real int8 GEMM wins it, the fallback loses it by an order of magnitude.
    ``TERNLIB_INT_MM=1`` or ``0`` overrides.

    Example:
        >>> isinstance(int_mm_fast(), bool)
        True
    """
    env = os.environ.get("TERNLIB_INT_MM")
    if env is not None:
        if env not in ("0", "1"):
            raise ValueError(f"TERNLIB_INT_MM must be 0 or 1, got {env!r}")
        return env == "1"
    import time

    gen = torch.Generator().manual_seed(0)
    q = torch.randint(-127, 128, (64, 512), dtype=torch.int8, generator=gen)  # (M, K)
    w = torch.randint(-1, 2, (512, 256), dtype=torch.int8, generator=gen)  # (K, N)
    x, wf = q.float(), w.t().float().contiguous()

    def best(fn) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    try:
        t_int = best(lambda: torch._int_mm(q, w))
    except RuntimeError:  # a build without a CPU int8 GEMM
        return False
    return t_int < best(lambda: F.linear(x, wf))


def int8_products(q: torch.Tensor, codes_t: torch.Tensor) -> torch.Tensor:
    """``q @ codes_t`` exactly, as int32: int8 activations ``q`` (M, K) times ternary codes ``codes_t`` (K, N) int8.

    ``torch._int_mm`` where :func:`int_mm_fast`; else a float GEMM on the same integers, which is exact: every
    partial sum is an integer of magnitude at most 127 K, which float32 holds exactly for K < 132,104 (float64
    beyond, or when float32 matmuls may round to lower precision, ``torch.set_float32_matmul_precision``).

    Example:
        >>> q = torch.tensor([[127, -127, 5]], dtype=torch.int8)
        >>> c = torch.tensor([[1], [1], [-1]], dtype=torch.int8)
        >>> int8_products(q, c)
        tensor([[-5]], dtype=torch.int32)
    """
    if q.shape[0] == 0:
        return torch.zeros(0, codes_t.shape[1], dtype=torch.int32)
    if int_mm_fast():
        return torch._int_mm(q, codes_t)  # (M, N)
    k = q.shape[1]
    dtype = torch.float32 if 127 * k < 2**24 and torch.get_float32_matmul_precision() == "highest" else torch.float64
    return (q.to(dtype) @ codes_t.to(dtype)).to(torch.int32)  # (M, N), exact


@functools.cache
def int8_layout() -> str:
    """The packed layout int8 calls use here: ``rows16`` on AVX-512 VNNI, ``rows8`` on AVX2 (each faster than
    ``planes128`` in all but a few cases measured: ``experiments/int8_layouts.py``), ``planes128`` on a scalar
    CPU, ``none`` without the extension. Decided once per process."""
    return {"avx512-vnni": "rows16", "avx2": "rows8", "scalar": "planes128"}.get(isa(), "none")


def to_planes128(codes: torch.Tensor) -> torch.Tensor:
    """Re-pack int8 codes ``(N, K)`` into the kernel's layout ``(N, Kp/4)`` uint8, Kp = ceil(K/128)*128.

    In block ``b`` of a row (32 bytes), byte ``j`` holds in bits ``2s, 2s+1`` the value
    ``u = code + 1`` of column ``128*b + 32*s + j``; padding columns hold code 0.

    Example:
        >>> import torch
        >>> p = to_planes128(torch.tensor([[1] * 32 + [-1] * 32 + [0] * 64]))
        >>> p.shape, hex(int(p[0, 0]))     # column 0 -> u=2 in bits 0-1, column 32 -> u=0, 64 and 96 -> u=1
        (torch.Size([1, 32]), '0x52')
    """
    n, k = codes.shape
    kp = -(-k // BLOCK) * BLOCK
    u = (codes.to(torch.int32) + 1)
    if kp != k:
        u = F.pad(u, (0, kp - k), value=1)
    u = u.reshape(n, kp // BLOCK, 4, 32)  # (N, blocks, s, j)
    planes = u[:, :, 0] | (u[:, :, 1] << 2) | (u[:, :, 2] << 4) | (u[:, :, 3] << 6)
    return planes.to(torch.uint8).reshape(n, kp // 4).contiguous()


def _to_rows(codes: torch.Tensor, lanes: int) -> torch.Tensor:
    """Codes ``(N, K)`` in groups of ``lanes`` rows: ``(ceil(N/lanes), Kq/16, lanes, 4)`` uint8 (:func:`to_rows16`)."""
    n, k = codes.shape
    nl, kq = -(-n // lanes) * lanes, -(-k // 16) * 16
    u = F.pad(codes.to(torch.int32) + 1, (0, kq - k, 0, nl - n), value=1)
    u = u.reshape(nl // lanes, lanes, kq // 16, 4, 4)  # (G, j, c, s, b): column 16c + 4s + b of row lanes*G + j
    byte = u[:, :, :, 0] | (u[:, :, :, 1] << 2) | (u[:, :, :, 2] << 4) | (u[:, :, :, 3] << 6)  # (G, j, c, b)
    return byte.permute(0, 2, 1, 3).to(torch.uint8).contiguous()  # (G, c, j, b)


def to_rows16(codes: torch.Tensor) -> torch.Tensor:
    """Re-pack int8 codes ``(N, K)`` into the VNNI tile kernel's layout ``(ceil(N/16), Kq/16, 16, 4)`` uint8, Kq = K
    rounded up to 16.

    In chunk ``c`` of row group ``g``, lane ``j`` (4 bytes) is row ``16g + j``, and its byte ``b`` holds in
    bits ``2s, 2s+1`` the value ``u = code + 1`` of column ``16c + 4s + b``; padding holds code 0. One
    64-byte load and a shift-and-mask give, in each 32-bit lane, four consecutive codes of one row.

    Example:
        >>> import torch
        >>> r = to_rows16(torch.tensor([[1, 0, -1] + [0] * 13]))   # one row, 16 columns
        >>> r.shape, [hex(int(v)) for v in r[0, 0, 0]]            # column 0 -> u=2, 1 -> u=1, 2 -> u=0
        (torch.Size([1, 1, 16, 4]), ['0x56', '0x55', '0x54', '0x55'])
    """
    return _to_rows(codes, 16)


def to_rows8(codes: torch.Tensor) -> torch.Tensor:
    """Re-pack int8 codes ``(N, K)`` into the AVX2 tile kernel's layout ``(ceil(N/8), Kq/16, 8, 4)`` uint8: the
    :func:`to_rows16` layout with row groups of 8 (one 32-byte register holds 16 columns of 8 rows).

    Example:
        >>> import torch
        >>> r = to_rows8(torch.tensor([[1, 0, -1] + [0] * 13] * 9))   # nine rows: two groups, the second padded
        >>> r.shape, [hex(int(v)) for v in r[1, 0, 1]]               # row 9 does not exist: code 0 (u=1)
        (torch.Size([2, 1, 8, 4]), ['0x55', '0x55', '0x55', '0x55'])
    """
    return _to_rows(codes, 8)


def _flat_scales(w: PackedTernary) -> torch.Tensor:
    return w.scales.reshape(-1).float().contiguous()  # (1,) or (N,)


def _fast_layout(w: PackedTernary) -> bool:
    """Weight on the CPU with one scale per tensor or per row (computed once per weight)."""
    ok = w.cache.get("_cpu_fast_layout")
    if ok is None or w.cache.get("_cpu_fast_layout_of") is not w.packed:
        ok = w.group_size is None and w.scales.numel() in (1, w.shape[0]) and w.packed.device.type == "cpu"
        w.cache["_cpu_fast_layout"], w.cache["_cpu_fast_layout_of"] = ok, w.packed
    return ok


_FLOATS = (torch.float32, torch.bfloat16, torch.float16)


def _supports_packed(x: torch.Tensor, w: PackedTernary) -> bool:
    """CPU float input, tensor or row scales, at most crossover() tokens (int8 activations: any number of tokens
    where PyTorch's int8 GEMM is its slow fallback, :func:`int_mm_fast`)."""
    return (x.is_cpu and x.dtype in _FLOATS and _fast_layout(w) and (_EXT is not None or extension() is not None)
            and ((w.activations == "int8" and not int_mm_fast()) or x.numel() <= crossover() * w.shape[1]))


def _supports_unpacked(x: torch.Tensor, w: PackedTernary) -> bool:
    """CPU float input, tensor or row scales (the fallback at every size if the extension is missing)."""
    return x.is_cpu and x.dtype in _FLOATS and _fast_layout(w)


@register_kernel("cpu_packed", priority=20, supports=_supports_packed)
def cpu_packed_kernel(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None) -> torch.Tensor:
    """Small-M CPU kernel on the 2-bit codes (C++, float32; int8 path exact against the reference).

    bf16 / fp16 inputs are computed in float32 and the result rounded to their dtype."""
    ext = extension()
    n, k = w.shape
    flat = x.dim() == 2 and x.dtype == torch.float32  # then no reshape or cast (each a few us a call, on every layer)
    x2 = x if flat else x.reshape(-1, k).float()  # (M, K)
    if bias is not None and bias.dtype != torch.float32:
        bias = bias.float()
    layout = int8_layout() if w.activations == "int8" else "planes128"
    if layout == "rows16":
        rows16, sw = w.cached("rows16", lambda: (to_rows16(w.codes()), _flat_scales(w)))  # (N/16, Kq/16, 16, 4) uint8
        y = ext.linear_rows16(x2, rows16, sw, bias, n)  # (M, N)
    elif layout == "rows8":
        rows8, sw = w.cached("rows8", lambda: (to_rows8(w.codes()), _flat_scales(w)))  # (N/8, Kq/16, 8, 4) uint8
        y = ext.linear_rows8(x2, rows8, sw, bias, n)  # (M, N)
    else:
        planes, sw = w.cached("planes128", lambda: (to_planes128(w.codes()), _flat_scales(w)))  # (N, Kp/4), (1|N,)
        y = ext.linear_small(x2, planes, sw, bias, w.activations == "int8", -1)  # (M, N)
    return y if flat else y.reshape(*x.shape[:-1], n).to(x.dtype)


@register_kernel("cpu_unpacked", priority=10, supports=_supports_unpacked)
def cpu_unpacked_kernel(x: torch.Tensor, w: PackedTernary, bias: torch.Tensor | None) -> torch.Tensor:
    """Large-M CPU kernel: weights unpacked once (cached); exact against the reference.

    int8 activations: int8 codes, :func:`int8_products` (``torch._int_mm``, oneDNN, where it is fast), fused C++
    quantization and epilogue.
    float activations: the weight dequantized to ``x``'s dtype and ``F.linear``, the reference's own
    computation (float32: FP32's speed and 4 bytes a weight in memory; bf16: bf16's speed and 2 bytes).
    """
    n, k = w.shape
    if w.activations == "int8":
        x2 = x.reshape(-1, k).float()  # (M, K); a no-op for float32
        codes_t = w.cached("int8_codes_t", lambda: w.codes().t().contiguous())  # (K, N) int8
        ext = extension()
        if ext is not None:
            q, sx, _ = ext.quantize_per_token(x2.contiguous(), k, -1)
            acc = int8_products(q, codes_t)  # (M, N) int32
            y = ext.dequant_epilogue_(acc, sx, _flat_scales(w), None if bias is None else bias.float(), -1)
        else:
            q, sx = quantize_activations(x2)
            acc = int8_products(q, codes_t)  # (M, N) int32
            y = acc.float() * (sx * _flat_scales(w))
            if bias is not None:
                y = y + bias.float()
        return y.reshape(*x.shape[:-1], n).to(x.dtype)
    weight = w.cached(("dequantized", x.dtype), lambda: w.dequantize().to(x.dtype))  # (N, K): the reference's weight
    return F.linear(x, weight, None if bias is None else bias.to(x.dtype))  # the reference's own computation

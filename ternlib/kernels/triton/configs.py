"""Launch configurations of the Triton kernels: tile sizes, warps, stages; the GEMV's token limit.

Simple rules on ``M``, ``N``, ``K`` and the number of SMs, no autotuning (see
:func:`default_config` and :func:`gemv_config`); ``experiments/gpu_check.py --sweep`` times others.
Nothing here imports triton.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .jit import INTERPRET

_STATE: dict[Any, Any] = {}  # "gemv_m": int, ("sms", device): int


def make_config(bm: int, bn: int, bkb: int, warps: int, stages: int, group_m: int = 8) -> dict[str, int]:
    """A launch configuration; ``bkb`` is the step in packed bytes (4 codes each)."""
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_KB": bkb, "GROUP_M": group_m, "num_warps": warps, "num_stages": stages}


def next_pow2(v: int) -> int:
    return 1 << max(0, int(v) - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def num_sms(device: torch.device) -> int:
    key = ("sms", device)
    if key not in _STATE:
        try:
            sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4
            _STATE[key] = int(sms)
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
    at most ~140 KiB of shared memory); ``experiments/gpu_check.py --sweep`` times others.
    """
    kb = cdiv(k, 4)
    bkb = min(128, max(32, next_pow2(kb)))
    if INTERPRET:
        return make_config(16 if m <= 16 else 32, 32, 32, 4, 1)
    if kind == "float" and elem_bytes > 2:  # float32: exact (non-TF32) dots run on the FMA units; small tiles
        return make_config(max(16, next_pow2(m)) if m <= 64 else 64, 16 if m <= 64 else 32, 8, 4, 3)
    if m <= 64:
        bm = max(16, next_pow2(m))
        grid_m = cdiv(m, bm)
        bn = next((c for c in (64, 32) if cdiv(n, c) * grid_m >= sms), 16)
        bkb = min(bkb, 4096 // bn, 4096 // (bm * elem_bytes))  # <= 32 weight bytes a thread, <= 16 KiB of x a stage
        return make_config(bm, bn, bkb, 4, 3)
    for bm, bn in ((128, 128), (128, 64), (64, 64), (64, 32)):  # the largest tile that fills the SMs
        if cdiv(m, bm) * cdiv(n, bn) >= sms:
            break
    return make_config(bm, bn, 32, 8 if bm * bn >= 128 * 128 else 4, 3)


def split_config(cfg: dict[str, int]) -> tuple[dict[str, int], int, int]:
    """(constexpr kwargs, BLOCK_M, BLOCK_N) of a config."""
    meta = {k: cfg[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_KB", "GROUP_M", "num_warps", "num_stages")}
    return meta, cfg["BLOCK_M"], cfg["BLOCK_N"]


GEMV_MAX_M = 16  # the most rows the split-K GEMV kernel takes (BLOCK_M <= 16)
_GEMV_M_DEFAULT = 1  # rows up to which it is chosen automatically (gemv_max_m()); H100: wins at M=1 only
GEMV_FUSED_QUANT_BYTES = 8192  # int8: quantize inside the GEMV while M * K * elem_bytes is at most this
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
    bm = next_pow2(max(1, m))
    kb = cdiv(k, 4)
    tiles = [t for t in _GEMV_TILES if bm * t[0] * t[1] <= 8192]
    bn, bkb = tiles[-1]
    for bn_, bkb_ in tiles:
        if cdiv(n, bn_) * cdiv(kb, bkb_) >= 4 * sms:
            bn, bkb = bn_, bkb_
            break
    bkb = min(bkb, max(16, next_pow2(kb)))
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_KB": bkb, "AMAX_BLOCK": min(next_pow2(k), max(256, 4096 // bm)),
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

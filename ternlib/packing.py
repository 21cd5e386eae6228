"""Packed storage of ternary codes: 2 bits a code (4 a byte) or 5 trits a byte (1.6 bits a code).

Both formats pack along the last dimension, row by row, so a weight ``(N, K)`` becomes
``(N, ceil(K/4))`` or ``(N, ceil(K/5))`` bytes and each output row stays contiguous (what a
matrix-vector kernel reads). The last dimension is padded with the code 0.

2-bit format. A code ``c`` is stored as ``u = c + 1`` in {0, 1, 2} (3 is invalid); code ``i``
of a group of four sits in bits ``2i, 2i+1`` (little-endian within the byte)::

    codes  [-1,  0, +1, +1]
    u      [ 0,  1,  2,  2]
    byte = 0 | 1 << 2 | 2 << 4 | 2 << 6 = 0 + 4 + 32 + 128 = 164 = 0b10_10_01_00

5-trit format. Five codes are one base-3 number, ``byte = sum(u_i * 3**i)`` (0..242; 243..255
are invalid)::

    codes  [+1, -1,  0,  0, +1]
    u      [ 2,  0,  1,  1,  2]
    byte = 2 + 0*3 + 1*9 + 1*27 + 2*81 = 200

Example:
    >>> import torch
    >>> from ternlib.packing import pack_2bit, unpack_2bit, pack_5trit, unpack_5trit
    >>> pack_2bit(torch.tensor([-1, 0, 1, 1])).tolist()
    [164]
    >>> pack_5trit(torch.tensor([1, -1, 0, 0, 1])).tolist()
    [200]
    >>> c = torch.tensor([[1, 0, -1], [0, 0, 1]])
    >>> torch.equal(unpack_5trit(pack_5trit(c), c.shape), c.to(torch.int8))
    True
"""
from __future__ import annotations

from typing import Sequence

import torch

CODES_PER_BYTE = {"2bit": 4, "5trit": 5}
_POW3 = torch.tensor([1, 3, 9, 27, 81], dtype=torch.int32)
_SHIFT2 = torch.tensor([0, 2, 4, 6], dtype=torch.int32)


def _check_codes(codes: torch.Tensor) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.is_floating_point() and not torch.isfinite(codes).all():
        raise ValueError("codes contain NaN or Inf; ternary codes must be -1, 0 or 1")
    if codes.numel() and ((codes != -1) & (codes != 0) & (codes != 1)).any():
        bad = codes[(codes != -1) & (codes != 0) & (codes != 1)].unique()[:5].tolist()
        raise ValueError(f"codes must all be -1, 0 or 1; found values such as {bad}")
    c = codes.to(torch.int32)
    return c.reshape(1) if c.ndim == 0 else c


def _padded(c: torch.Tensor, per_byte: int) -> torch.Tensor:
    """(..., K) int32 codes -> (..., ceil(K/per_byte), per_byte) of u = c + 1, padded with u=1."""
    k = c.shape[-1]
    nb = -(-k // per_byte)
    u = c + 1
    pad = nb * per_byte - k
    if pad:
        u = torch.nn.functional.pad(u, (0, pad), value=1)
    return u.reshape(*c.shape[:-1], nb, per_byte)


def _shape(shape: Sequence[int] | torch.Size) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must be non-negative, got {shape}")
    return shape


def packed_shape(shape: Sequence[int], packing: str = "2bit") -> tuple[int, ...]:
    """The byte-tensor shape that ``pack(codes of shape, packing)`` returns."""
    shape = _shape(shape) or (1,)
    return (*shape[:-1], -(-shape[-1] // CODES_PER_BYTE[packing]))


def _check_packed(packed: torch.Tensor, shape: tuple[int, ...], packing: str) -> None:
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        raise TypeError(f"packed codes must be a uint8 tensor, got {getattr(packed, 'dtype', type(packed))}")
    expected = packed_shape(shape, packing)
    if tuple(packed.shape) != expected:
        raise ValueError(
            f"packed tensor has shape {tuple(packed.shape)} but codes of shape {shape} "
            f"pack to {expected} in the {packing} format"
        )


def pack_2bit(codes: torch.Tensor) -> torch.Tensor:
    """Pack codes in {-1,0,1} of any shape into uint8, 4 per byte along the last dim."""
    u = _padded(_check_codes(codes), 4)
    return (u << _SHIFT2.to(u.device)).sum(-1).to(torch.uint8)


def unpack_2bit(packed: torch.Tensor, shape: Sequence[int], validate: bool = True) -> torch.Tensor:
    """Inverse of :func:`pack_2bit`: int8 codes of ``shape``.

    With ``validate`` a byte holding the unused value 3 raises ``ValueError`` (corrupt data).
    """
    shape = _shape(shape)
    _check_packed(packed, shape, "2bit")
    u = (packed.to(torch.int32).unsqueeze(-1) >> _SHIFT2.to(packed.device)) & 3
    if validate and (u == 3).any():
        raise ValueError("corrupt 2-bit packed codes: found the unused 2-bit value 3")
    k = shape[-1] if shape else 1
    c = (u.flatten(-2)[..., :k] - 1).to(torch.int8)
    return c.reshape(shape)


def pack_5trit(codes: torch.Tensor) -> torch.Tensor:
    """Pack codes in {-1,0,1} of any shape into uint8, 5 per byte (base 3) along the last dim."""
    u = _padded(_check_codes(codes), 5)
    return (u * _POW3.to(u.device)).sum(-1).to(torch.uint8)


def unpack_5trit(packed: torch.Tensor, shape: Sequence[int], validate: bool = True) -> torch.Tensor:
    """Inverse of :func:`pack_5trit`; with ``validate`` a byte above 242 raises ``ValueError``."""
    shape = _shape(shape)
    _check_packed(packed, shape, "5trit")
    b = packed.to(torch.int32)
    if validate and (b > 242).any():
        raise ValueError("corrupt 5-trit packed codes: found a byte above 242 (3**5 - 1)")
    u = torch.div(b.unsqueeze(-1), _POW3.to(b.device), rounding_mode="floor") % 3
    k = shape[-1] if shape else 1
    c = (u.flatten(-2)[..., :k] - 1).to(torch.int8)
    return c.reshape(shape)


def pack(codes: torch.Tensor, packing: str = "2bit") -> torch.Tensor:
    """Pack with the named format (``"2bit"`` or ``"5trit"``)."""
    if packing == "2bit":
        return pack_2bit(codes)
    if packing == "5trit":
        return pack_5trit(codes)
    raise ValueError(f"unknown packing {packing!r}; use '2bit' or '5trit'")


def unpack(packed: torch.Tensor, shape: Sequence[int], packing: str = "2bit", validate: bool = True) -> torch.Tensor:
    """Unpack with the named format (``"2bit"`` or ``"5trit"``)."""
    if packing == "2bit":
        return unpack_2bit(packed, shape, validate)
    if packing == "5trit":
        return unpack_5trit(packed, shape, validate)
    raise ValueError(f"unknown packing {packing!r}; use '2bit' or '5trit'")

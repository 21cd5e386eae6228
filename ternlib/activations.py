"""Per-token int8 quantization of activations, shared by the layers and the kernels.

With ``activations="int8"`` a training ``TernaryLinear`` passes its input through
:func:`fake_quantize_activations` (straight-through gradient) and a frozen one's kernels quantize it
with :func:`quantize_activations`, whose float32 arithmetic the C++ and Triton kernels reproduce
bit for bit.
"""
from __future__ import annotations

import torch


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token absmax int8 quantization: ``x ~ q * scale`` with ``q`` in [-127, 127].

    ``q = round(x * (127 / amax))`` (round half to even), ``scale = amax * (1/127)``, with ``amax``
    the largest ``|x|`` of each row; an all-zero row gives ``q = 0`` and ``scale = 0``.
    Computed in float32; the C++ and Triton kernels reproduce it bit for bit.

    Example:
        >>> import torch
        >>> q, s = quantize_activations(torch.tensor([[1.0, -0.5, 0.25, 0.0]]))
        >>> q.tolist(), round(s.item() * 127, 6)
        ([[127, -64, 32, 0]], 1.0)
    """
    xf = x.float()
    amax = xf.abs().amax(-1, keepdim=True) if xf.shape[-1] else xf.new_zeros(*xf.shape[:-1], 1)  # (..., 1)
    # Spelled out operation by operation in float32 so that every kernel (C++, Triton) and every
    # device reproduces it exactly: inv = fl(fl(1 / amax) * 127), scale = fl(amax * fl(1/127)).
    inv = torch.where(amax > 0, torch.reciprocal(amax) * 127.0, torch.zeros_like(amax))
    q = torch.round(xf * inv).clamp_(-127, 127).to(torch.int8)  # (..., K)
    return q, amax * torch.tensor(1.0 / 127.0, dtype=torch.float32, device=amax.device)


def fake_quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """``q * scale`` of :func:`quantize_activations` in ``x.dtype``, with a straight-through gradient."""
    q, s = quantize_activations(x.detach())
    return x + ((q.float() * s).to(x.dtype) - x).detach()

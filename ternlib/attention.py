"""LinearMultiheadAttention: ``nn.MultiheadAttention`` rebuilt from ``nn.Linear`` projections.

PyTorch's ``nn.MultiheadAttention`` (used by torchvision's ViT) keeps its input projection as a
raw ``in_proj_weight`` parameter and reads ``out_proj.weight`` directly inside
``F.multi_head_attention_forward``, so swapping its Linear layers would silently leave them in
full precision. ``quantize_`` therefore first replaces each one by this module: the same maths
with ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` as ordinary Linear layers, which then
become ternary like any other.

Example:
    >>> import torch
    >>> from ternlib.attention import LinearMultiheadAttention
    >>> mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    >>> lin = LinearMultiheadAttention.from_mha(mha)
    >>> x = torch.randn(2, 5, 16)
    >>> torch.allclose(mha(x, x, x)[0], lin(x, x, x)[0], atol=1e-6)
    True
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LinearMultiheadAttention(nn.Module):
    """Drop-in for ``nn.MultiheadAttention`` (same call signature and outputs) whose projections
    are separate ``nn.Linear`` modules."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    @classmethod
    def from_mha(cls, mha: nn.MultiheadAttention) -> "LinearMultiheadAttention":
        """The equivalent module, sharing no storage with ``mha``."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"from_mha expects an nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise NotImplementedError(
                "ternlib converts nn.MultiheadAttention only with kdim == vdim == embed_dim, "
                "add_bias_kv=False and add_zero_attn=False (as in torchvision's ViT)")
        w = mha.in_proj_weight
        new = cls(mha.embed_dim, mha.num_heads, mha.dropout, mha.in_proj_bias is not None, mha.batch_first)
        new = new.to(device=w.device, dtype=w.dtype)
        e = mha.embed_dim
        with torch.no_grad():
            for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
                proj.weight.copy_(w[i * e:(i + 1) * e])
                if mha.in_proj_bias is not None:
                    proj.bias.copy_(mha.in_proj_bias[i * e:(i + 1) * e])
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                new.out_proj.bias.copy_(mha.out_proj.bias)
        return new.train(mha.training)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, T, d)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if not batched:  # (T, E) unbatched input -> (1, T, E)
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:  # (T, B, E) -> (B, T, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        b, t, e = query.shape
        s = key.shape[1]
        if e != self.embed_dim:
            raise ValueError(f"expected embed_dim {self.embed_dim}, got inputs of width {e}")
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        mask = None  # additive float mask broadcastable to (B, h, T, S)
        if attn_mask is not None:
            am = attn_mask if attn_mask.dim() == 2 else attn_mask.view(b, self.num_heads, t, s)
            mask = (torch.zeros_like(am, dtype=q.dtype).masked_fill_(am, float("-inf")) if am.dtype == torch.bool
                    else am.to(q.dtype))
        elif is_causal:
            mask = torch.ones(t, s, dtype=torch.bool, device=q.device).triu_(1)
            mask = torch.zeros(t, s, dtype=q.dtype, device=q.device).masked_fill_(mask, float("-inf"))
        if key_padding_mask is not None:
            kpm = key_padding_mask.view(b, 1, 1, s)
            kpm = (torch.zeros_like(kpm, dtype=q.dtype).masked_fill_(kpm, float("-inf")) if kpm.dtype == torch.bool
                   else kpm.to(q.dtype))
            mask = kpm if mask is None else mask + kpm
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, h, T, S)
            if mask is not None:
                scores = scores + mask
            weights = scores.softmax(-1)
            out = F.dropout(weights, p, self.training) @ v  # (B, h, T, d)
            if average_attn_weights:
                weights = weights.mean(1)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = self.out_proj(out.transpose(1, 2).reshape(b, t, e))  # (B, T, E)
        if not batched:
            out = out.squeeze(0)
            weights = None if weights is None else weights.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

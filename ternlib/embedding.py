"""Int8Embedding: a token-embedding table stored as int8 codes with one float32 scale per row.

In a small encoder the embedding table dominates: all-MiniLM-L6-v2 has 30522 x 384 = 11.7M
embedding weights out of 22.7M parameters. Storing it as int8 (symmetric, one scale per row,
``scale = max|row| / 127``) takes ~0.25x of its FP32 bytes; the lookup dequantizes only the
rows it gathers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Int8EmbeddingConfig:
    """Config for ``quantize_`` that turns ``nn.Embedding`` layers into :class:`Int8Embedding`.

    Example:
        >>> import torch
        >>> from ternlib import quantize_, Int8EmbeddingConfig
        >>> m = torch.nn.Sequential(torch.nn.Embedding(100, 8))
        >>> quantize_(m, Int8EmbeddingConfig())[0]
        Int8Embedding(100, 8, bits=8, per-row scales)
    """

    min_rows: int = 0  # leave tables with fewer rows (e.g. token-type tables) in float

    def __post_init__(self) -> None:
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or self.min_rows < 0:
            raise ValueError(f"Int8EmbeddingConfig.min_rows must be a non-negative int, got {self.min_rows!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Int8Embedding(nn.Module):
    """``nn.Embedding`` replacement holding int8 ``qweight`` (V, D) and float32 ``scale`` (V, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.register_buffer("qweight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scale", torch.zeros(num_embeddings, 1))

    @classmethod
    @torch.no_grad()
    def from_embedding(cls, emb: nn.Embedding) -> "Int8Embedding":
        if not isinstance(emb, nn.Embedding):
            raise TypeError(f"from_embedding expects an nn.Embedding, got {type(emb).__name__}")
        w = emb.weight.detach().float()  # (V, D)
        scale = w.abs().amax(dim=1, keepdim=True) / 127.0  # (V, 1)
        q = torch.round(w / scale.clamp_min(1e-12)).clamp_(-127, 127).to(torch.int8)
        layer = cls(emb.num_embeddings, emb.embedding_dim, emb.padding_idx)
        layer.qweight.copy_(q)
        layer.scale.copy_(scale)
        return layer.to(emb.weight.device)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized table (V, D) in the scales' dtype (float32, or what the model was cast to); for code that
        reads ``.weight``."""
        return self.qweight.to(self.scale.dtype) * self.scale

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (...,) -> (..., D)
        s = F.embedding(ids, self.scale)  # (..., 1) float32, or bf16 / fp16 in a model cast to it
        return F.embedding(ids, self.qweight).to(s.dtype) * s

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, bits=8, per-row scales"

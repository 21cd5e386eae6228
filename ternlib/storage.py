"""Storage report: the bytes of each component of a (ternary) model against its FP32 original.

Components: ternary linear codes (packed), their scales and biases, full-precision linear
layers, embeddings (float or int8), norms, and everything else. The FP32 column is what the
same tensors take as float32 in the original model.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch.nn as nn

from .embedding import Int8Embedding
from .layers import TernaryLinear, n_scale_groups
from .packing import packed_shape

COMPONENTS = ("linear codes", "linear scales", "linear biases", "linear (full precision)",
              "embeddings", "norms", "other")


@dataclass
class StorageRow:
    component: str
    params: int = 0  # parameters of the FP32 original this component stands for
    fp32_bytes: int = 0
    bytes: int = 0

    @property
    def ratio(self) -> float:
        return self.bytes / self.fp32_bytes if self.fp32_bytes else float("nan")


@dataclass
class StorageReport:
    """Per-component bytes; ``str(report)`` is a Markdown table."""

    rows: "OrderedDict[str, StorageRow]" = field(default_factory=OrderedDict)

    def _sum(self, names: tuple[str, ...]) -> StorageRow:
        out = StorageRow("+".join(names))
        for n in names:
            r = self.rows.get(n)
            if r is not None:
                out.params += r.params
                out.fp32_bytes += r.fp32_bytes
                out.bytes += r.bytes
        return out

    @property
    def ternary_linear(self) -> StorageRow:
        """Ternary linear layers as a whole: codes + scales + biases."""
        return self._sum(("linear codes", "linear scales", "linear biases"))

    @property
    def total(self) -> StorageRow:
        return self._sum(tuple(self.rows))

    def to_dict(self) -> dict:
        d = {k: {"params": r.params, "fp32_bytes": r.fp32_bytes, "bytes": r.bytes, "ratio": r.ratio}
             for k, r in self.rows.items()}
        for name, r in (("ternary linear", self.ternary_linear), ("total", self.total)):
            d[name] = {"params": r.params, "fp32_bytes": r.fp32_bytes, "bytes": r.bytes, "ratio": r.ratio}
        return d

    def __str__(self) -> str:
        lines = ["| component | params | FP32 MB | stored MB | ratio |", "|---|---:|---:|---:|---:|"]
        rows = list(self.rows.values()) + [
            StorageRow("**ternary linear (codes+scales+biases)**", **_fields(self.ternary_linear)),
            StorageRow("**total**", **_fields(self.total)),
        ]
        for r in rows:
            ratio = "-" if r.fp32_bytes == 0 else f"{r.ratio:.4f}"
            lines.append(f"| {r.component} | {r.params:,} | {r.fp32_bytes / 1e6:.3f} | {r.bytes / 1e6:.3f} | {ratio} |")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return str(self)


def _fields(r: StorageRow) -> dict:
    return {"params": r.params, "fp32_bytes": r.fp32_bytes, "bytes": r.bytes}


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)) or "Norm" in type(m).__name__


def storage_report(model: nn.Module) -> StorageReport:
    """Bytes per component of ``model`` as stored by ``ternlib.save`` against FP32.

    Ternary layers count as frozen (packed), whether or not they are frozen yet.

    Example:
        >>> import torch
        >>> from ternlib import quantize_, storage_report
        >>> m = quantize_(torch.nn.Sequential(torch.nn.Linear(64, 64, bias=False)))
        >>> storage_report(m).ternary_linear.ratio      # 1024 bytes of codes + 4 bytes of scale
        0.062744140625
    """
    rows: "OrderedDict[str, StorageRow]" = OrderedDict((c, StorageRow(c)) for c in COMPONENTS)

    def add(component: str, params: int, fp32: int, stored: int) -> None:
        r = rows[component]
        r.params += params
        r.fp32_bytes += fp32
        r.bytes += stored

    for m in model.modules():
        if isinstance(m, TernaryLinear):
            n, k, c = m.out_features, m.in_features, m.config
            codes_bytes = 1
            for s in packed_shape((n, k), c.packing):
                codes_bytes *= s
            rows_ = 1 if c.granularity == "tensor" else n
            add("linear codes", n * k, 4 * n * k, codes_bytes)
            add("linear scales", 0, 0, 4 * rows_ * n_scale_groups(c, k))
            if m.bias is not None:
                add("linear biases", n, 4 * n, m.bias.numel() * m.bias.element_size())
            continue
        if isinstance(m, Int8Embedding):
            v, d = m.num_embeddings, m.embedding_dim
            add("embeddings", v * d, 4 * v * d, m.qweight.numel() + m.scale.numel() * 4)
            continue
        if isinstance(m, nn.Linear):
            comp = "linear (full precision)"
        elif isinstance(m, nn.Embedding) or "Embedding" in type(m).__name__:
            comp = "embeddings"
        elif _is_norm(m):
            comp = "norms"
        else:
            comp = "other"
        tensors = list(m.named_parameters(recurse=False)) + [
            (n, b) for n, b in m.named_buffers(recurse=False) if n not in m._non_persistent_buffers_set
        ]
        for _, t in tensors:
            if t is None:
                continue
            stored = t.numel() * t.element_size()
            add(comp, t.numel(), 4 * t.numel() if t.is_floating_point() else stored, stored)
    return StorageReport(OrderedDict((k, r) for k, r in rows.items() if r.params or r.bytes))

"""TernaryConfig: how a weight matrix becomes ternary (rule, beta, scale granularity, packing).

One frozen dataclass is the whole recipe; it travels with every `TernaryLinear` and into the
JSON file that `ternlib.save` writes, so a checkpoint says exactly how it was made.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Rule = Literal["absmean", "twn"]
Granularity = Literal["tensor", "row", "group"]
Packing = Literal["2bit", "5trit"]
Activations = Literal["float", "int8"]

RULES = ("absmean", "twn")
GRANULARITIES = ("tensor", "row", "group")
PACKINGS = ("2bit", "5trit")
ACTIVATIONS = ("float", "int8")


@dataclass(frozen=True)
class TernaryConfig:
    """The ternarization recipe.

    Args:
        rule: ``"absmean"`` (scale ``s = beta * mean|W|``, codes ``clamp(round(W/s), -1, 1)``;
            ``beta=2`` is arXiv:2411.15438, ``beta=1`` is BitNet b1.58) or ``"twn"`` (Ternary
            Weight Networks: threshold ``0.7 * mean|W|``, scale = mean of the surviving ``|W|``).
        beta: the absmean multiplier (ignored by ``twn``); must be > 0.
        granularity: one scale per ``"tensor"`` (the paper), per output ``"row"``, or per
            ``"group"`` of ``group_size`` consecutive input columns in each row.
        group_size: columns per group when ``granularity="group"``.
        packing: storage of frozen codes: ``"2bit"`` (4 codes a byte) or ``"5trit"``
            (5 codes a byte in base 3, 1.6 bits a weight).
        activations: precision of the layer's inputs: ``"float"`` (kept as they come) or
            ``"int8"`` (quantized per token to int8 with an absmax scale, as BitNet b1.58 does;
            fast integer kernels then compute the products exactly). In training the int8
            rounding goes through a straight-through estimator.

    Example:
        >>> from ternlib import TernaryConfig
        >>> TernaryConfig(beta=1.0, granularity="row")
        TernaryConfig(rule='absmean', beta=1.0, granularity='row', group_size=128, packing='2bit', activations='float')
    """

    rule: Rule = "absmean"
    beta: float = 2.0
    granularity: Granularity = "tensor"
    group_size: int = 128
    packing: Packing = "2bit"
    activations: Activations = "float"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"TernaryConfig.rule must be one of {RULES}, got {self.rule!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not self.beta > 0:
            raise ValueError(f"TernaryConfig.beta must be a positive number, got {self.beta!r}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"TernaryConfig.granularity must be one of {GRANULARITIES}, got {self.granularity!r}"
            )
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
            raise ValueError(f"TernaryConfig.group_size must be a positive int, got {self.group_size!r}")
        if self.packing not in PACKINGS:
            raise ValueError(f"TernaryConfig.packing must be one of {PACKINGS}, got {self.packing!r}")
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"TernaryConfig.activations must be one of {ACTIVATIONS}, got {self.activations!r}")
        object.__setattr__(self, "beta", float(self.beta))

    @property
    def scale_group_size(self) -> int | None:
        """Input columns per scale: ``group_size`` when ``granularity="group"``, else ``None`` (one scale per
        tensor or per row)."""
        return self.group_size if self.granularity == "group" else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the form stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TernaryConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TernaryConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def short(self) -> str:
        """A compact label such as ``absmean(beta=2)/tensor`` for tables and plots."""
        rule = f"absmean(beta={self.beta:g})" if self.rule == "absmean" else "twn"
        gran = f"group{self.group_size}" if self.granularity == "group" else self.granularity
        return f"{rule}/{gran}" + ("/a8" if self.activations == "int8" else "")

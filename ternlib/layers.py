"""TernaryLinear: a drop-in ``nn.Linear`` with ternary weights.

Two states:

- **training** (after ``quantize_``): holds the full-precision latent ``weight`` ``(N, K)``;
  the forward pass uses the ternary weight through a straight-through estimator, so gradients
  reach the latent weight.
- **frozen** (after ``freeze()`` / ``ternlib.freeze_`` / ``ternlib.load``): holds only packed
  codes, float32 scales and the bias; the forward pass goes through the kernel dispatch.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .activations import fake_quantize_activations
from .config import TernaryConfig
from .kernels import PackedTernary, ternary_linear
from .kernels.ops import ternary_linear_op
from .packing import packed_shape, unpack
from .ternarize import dequantize, fake_quantize, ste_weight, ternarize


class TernaryLinear(nn.Module):
    """Linear layer whose effective weight is ``scale * codes`` with codes in {-1, 0, 1}.

    Example:
        >>> import torch
        >>> from ternlib import TernaryLinear, TernaryConfig
        >>> layer = TernaryLinear.from_linear(torch.nn.Linear(16, 4), TernaryConfig(beta=2.0))
        >>> layer
        TernaryLinear(in_features=16, out_features=4, bias=True, rule=absmean, beta=2.0, granularity=tensor,
                      packing=2bit, frozen=False)
        >>> y = layer(torch.randn(3, 16)); y.sum().backward()
        >>> layer.weight.grad.shape                     # gradients reach the latent weight
        torch.Size([4, 16])
        >>> layer.freeze().effective_weight().unique().numel() <= 3
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        config: TernaryConfig | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.config = config or TernaryConfig()
        if not isinstance(self.config, TernaryConfig):
            raise TypeError(f"config must be a TernaryConfig, got {type(self.config).__name__}")
        self.frozen = False
        self.kernel: str | None = None  # None: let the dispatch choose
        self._kernel_cache: dict = {}  # kernels' derived forms of the frozen weight (not saved)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's init
        if self.bias is not None:
            bound = 1 / math.sqrt(in_features) if in_features > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_linear(cls, linear: nn.Linear, config: TernaryConfig | None = None) -> "TernaryLinear":
        """A training-state TernaryLinear whose latent weight is a copy of ``linear``'s."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear expects an nn.Linear, got {type(linear).__name__}")
        w = linear.weight
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, config,
                    device=w.device, dtype=w.dtype)
        with torch.no_grad():
            layer.weight.copy_(w)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    @classmethod
    def empty_frozen(cls, in_features: int, out_features: int, bias: bool, config: TernaryConfig) -> "TernaryLinear":
        """A frozen layer with zero codes, to be filled by ``load_state_dict`` (used by ``load``)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.in_features, layer.out_features, layer.config = in_features, out_features, config
        layer.kernel = None
        layer._kernel_cache = {}
        layer.weight = None
        layer.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        n_groups = n_scale_groups(config, in_features)
        rows = 1 if config.granularity == "tensor" else out_features
        layer.register_buffer("packed",
                              torch.zeros(packed_shape((out_features, in_features), config.packing), dtype=torch.uint8))
        layer.register_buffer("scales", torch.zeros(rows, n_groups))
        layer.frozen = True
        return layer

    # ------------------------------------------------------------------ state changes
    @torch.no_grad()
    def freeze(self) -> "TernaryLinear":
        """Replace the latent weight by packed codes + scales (irreversible); returns self."""
        if self.frozen:
            return self
        t = ternarize(self.weight.detach().float(), self.config)
        w = PackedTernary.from_codes(t.codes, t.scales, self.config)
        self.weight = None  # drops the Parameter
        self.register_buffer("packed", w.packed)
        self.register_buffer("scales", w.scales)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.frozen = True
        return self

    def _apply(self, fn, recurse=True):
        """``.to()``, ``.cuda()``, ``.bfloat16()`` ... move a frozen layer's scales with it but keep them float32.

        A model cast to bf16 or fp16 computes in that dtype (activations, bias, output); rounding the
        per-tensor or per-row scales too would change every weight for no speed, so a cast of the scales is
        undone (a move to another device is kept). ``packed`` is uint8, which casts leave alone.
        """
        scales = self._buffers.get("scales") if getattr(self, "frozen", False) else None
        super()._apply(fn, recurse)
        if scales is not None and self._buffers["scales"].dtype != scales.dtype:  # a cast: undo it, keep the move
            self._buffers["scales"] = scales.to(self._buffers["scales"].device)
        return self

    def packed_weight(self) -> PackedTernary:
        """The frozen weight as the kernels see it (one object per layer, rebuilt if its buffers change)."""
        if not self.frozen:
            raise RuntimeError("packed_weight() needs a frozen layer: call freeze() first")
        pw, buffers = self.__dict__.get("_packed_weight"), self._buffers
        if (pw is not None and pw.packed is buffers["packed"] and pw.scales is buffers["scales"]
                and pw.activations == self.config.activations):
            return pw
        pw = PackedTernary(self.packed, self.scales, (self.out_features, self.in_features), self.config.packing,
                           self.config.scale_group_size, self.config.activations,
                           self.__dict__.setdefault("_kernel_cache", {}))
        self.__dict__["_packed_weight"] = pw
        return pw

    def codes(self) -> torch.Tensor:
        """Ternary codes ``(N, K)`` int8 (from the packed buffer, or computed from the latent weight)."""
        if self.frozen:
            return unpack(self.packed, (self.out_features, self.in_features), self.config.packing)
        return ternarize(self.weight.detach().float(), self.config).codes

    def effective_weight(self) -> torch.Tensor:
        """The float32 weight the forward pass uses: ``scales * codes``."""
        if self.frozen:
            return dequantize(self.codes(), self.scales, self.config.scale_group_size)
        return fake_quantize(self.weight.detach().float(), self.config)

    # ------------------------------------------------------------------ compute
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., K) -> (..., N)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"TernaryLinear expects inputs with {self.in_features} features in the last dimension, "
                f"got shape {tuple(x.shape)}"
            )
        if self.frozen:
            if torch.compiler.is_compiling():  # torch.compile / torch.export: one opaque custom operator
                c = self.config
                return ternary_linear_op(x, self.packed, self.scales, self.bias, self.out_features, self.in_features,
                                         c.packing, c.scale_group_size or 0, c.activations, self.kernel or "")
            return ternary_linear(x, self.packed_weight(), self.bias, self.kernel)
        w = ste_weight(self.weight, self.config)
        if self.config.activations == "int8":
            x = fake_quantize_activations(x)
        return F.linear(x, w.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        c = self.config
        rule = f"rule={c.rule}" + (f", beta={c.beta}" if c.rule == "absmean" else "")
        gran = f"granularity={c.granularity}" + (f", group_size={c.group_size}" if c.granularity == "group" else "")
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"{rule}, {gran}, packing={c.packing}"
            + (f", activations={c.activations}" if c.activations != "float" else "")
            + f", frozen={self.frozen}"
            + (f", kernel={self.kernel}" if self.kernel else "")
        )


def n_scale_groups(config: TernaryConfig, in_features: int) -> int:
    """Scales per output row: 1, or ``ceil(in_features / group_size)`` for group granularity."""
    if config.granularity != "group":
        return 1
    return -(-in_features // min(config.group_size, in_features))

"""Chapter 1's from-scratch ternary layer agrees with ``ternlib.TernaryLinear`` (outputs, codes, gradients).

The chapter writes the absmean rule and the straight-through estimator in about twenty lines before it
uses the library; this test keeps that claim true for several shapes and values of beta, so a change to
``ternlib.ternarize`` or ``TernaryLinear`` that breaks the textbook rule fails here, not only in the book.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ternlib import TernaryConfig, TernaryLinear


class ScratchTernaryLinear(nn.Module):
    """The chapter's layer: absmean rule, one scale per tensor, straight-through estimator."""

    def __init__(self, linear: nn.Linear, beta: float = 2.0) -> None:
        super().__init__()
        self.beta = beta
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def ternarize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The scale ``beta * mean|W|`` and the codes ``clamp(round(W / s), -1, 1)``."""
        s = self.beta * self.weight.abs().mean()
        c = torch.clamp(torch.round(self.weight / s), -1, 1)
        return s, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, c = self.ternarize()
        w = self.weight + (s * c - self.weight).detach()
        return F.linear(x, w, self.bias)


@pytest.mark.parametrize(
    ("in_features", "out_features", "bias", "beta", "batch"),
    [
        (96, 48, True, 2.0, (8,)),
        (37, 11, False, 1.0, (4, 5)),
        (130, 7, True, 0.7, (3, 2, 6)),
        (16, 64, True, 3.0, (1,)),
    ],
)
def test_scratch_layer_matches_ternary_linear(in_features, out_features, bias, beta, batch):
    torch.manual_seed(in_features)
    base = nn.Linear(in_features, out_features, bias=bias)
    x = torch.randn(*batch, in_features)
    g = torch.randn(*batch, out_features)
    config = TernaryConfig() if beta == 2.0 else TernaryConfig(beta=beta)

    scratch = ScratchTernaryLinear(base, beta=beta)
    library = TernaryLinear.from_linear(base, config)
    y_scratch, y_library = scratch(x), library(x)
    (y_scratch * g).sum().backward()
    (y_library * g).sum().backward()

    torch.testing.assert_close(y_scratch, y_library)
    torch.testing.assert_close(scratch.weight.grad, library.weight.grad)
    if bias:
        torch.testing.assert_close(scratch.bias.grad, library.bias.grad)
    _, codes = scratch.ternarize()
    assert torch.equal(codes.to(torch.int8), library.codes())
    # the straight-through gradient is the gradient with respect to the ternary weight, g^T x
    torch.testing.assert_close(scratch.weight.grad, g.reshape(-1, out_features).T @ x.reshape(-1, in_features))


def test_default_config_is_the_chapters_rule():
    """The chapter compares against ``TernaryConfig()``: absmean, beta 2, one scale per tensor, float inputs."""
    c = TernaryConfig()
    assert (c.rule, c.beta, c.granularity, c.activations) == ("absmean", 2.0, "tensor", "float")


def test_without_ste_every_weight_gets_the_same_gradient_magnitude():
    """Rounding passes no gradient: without the STE only the scale does, one magnitude for every weight."""
    torch.manual_seed(0)
    w = torch.randn(12, 20, requires_grad=True)
    x, g = torch.randn(5, 20), torch.randn(5, 12)
    s = 2.0 * w.abs().mean()
    (F.linear(x, s * torch.clamp(torch.round(w / s), -1, 1)) * g).sum().backward()
    assert w.grad.abs().unique().numel() == 1

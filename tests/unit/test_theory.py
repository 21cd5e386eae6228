import math

import pytest
import torch

from ternlib import TernaryConfig, reconstruction_error
from ternlib.theory import absmean_error, optimal_scale, optimal_threshold, ternary_error, twn_error


def _sample(dist, n=1_000_000):
    g = torch.Generator().manual_seed(1)
    if dist == "gaussian":
        return torch.randn(1000, n // 1000, generator=g, dtype=torch.float64)
    u = torch.rand(1000, n // 1000, generator=g, dtype=torch.float64) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs())  # Laplace(0, 1)


@pytest.mark.parametrize("dist", ["gaussian", "laplace"])
@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_theory_matches_measured_absmean_error(dist, beta):
    w = _sample(dist)
    measured = reconstruction_error(w, TernaryConfig(beta=beta)) ** 2  # relative MSE
    assert measured == pytest.approx(absmean_error(dist, beta), rel=0.01)


@pytest.mark.parametrize("dist", ["gaussian", "laplace"])
def test_theory_matches_measured_twn_error(dist):
    w = _sample(dist)
    measured = reconstruction_error(w, TernaryConfig(rule="twn")) ** 2
    assert measured == pytest.approx(twn_error(dist), rel=0.01)


def test_known_optima():
    assert optimal_threshold("laplace") == pytest.approx(1.0, abs=1e-4)
    assert optimal_scale("laplace", 1.0) == pytest.approx(2.0)
    # Gaussian: 0.6120 sigma (Li & Liu 2016), sigma = sqrt(pi/2) E|w|
    assert optimal_threshold("gaussian") == pytest.approx(0.6120 * math.sqrt(math.pi / 2), abs=1e-3)
    # beta = 2 is the best absmean rule for Laplace weights
    betas = torch.linspace(0.5, 4, 351)
    errs = ternary_error("laplace", betas / 2, betas)
    assert betas[errs.argmin()].item() == pytest.approx(2.0, abs=0.011)


def test_unknown_distribution():
    with pytest.raises(ValueError, match="unknown distribution"):
        ternary_error("cauchy", 1.0)

"""Where ternary thresholds come from: the reconstruction error under a weight distribution.

Ternarize ``w`` with threshold ``d`` and scale ``s``: ``q(w) = s * sign(w) * [|w| > d]``. Its
mean squared error is

    E[(w - q(w))^2] = E[w^2] - 2 s E[|w|; |w| > d] + s^2 P(|w| > d),

minimised over ``s`` by the conditional mean ``s* = E[|w| | |w| > d]``, which leaves

    E[w^2] - E[|w|; |w| > d]^2 / P(|w| > d).

Everything here is in units of ``m = E|w|`` (the ``mean|W|`` every rule uses) and returns the
*relative mean squared error* ``MSE / E[w^2]``. :func:`ternlib.reconstruction_error` measures the
relative Frobenius error ``||W - Q(W)|| / ||W||`` of a real layer, the square root of this
quantity: compare ``reconstruction_error(W, cfg) ** 2`` with the functions below.

- Gaussian ``N(0, sigma^2)``: ``m = sigma sqrt(2/pi)``; the optimum is ``d ~ 0.612 sigma ~ 0.767 m``.
- Laplace with scale ``b``: ``m = b``, ``E[|w|; |w|>d] = (d + b) e^{-d/b}``, ``P = e^{-d/b}``;
  the optimum is ``d = b = m`` with ``s* = 2b = 2m``: exactly the absmean rule with ``beta = 2``.

Example:
    >>> from ternlib.theory import optimal_threshold, absmean_error
    >>> round(optimal_threshold("laplace"), 3), round(optimal_threshold("gaussian"), 3)
    (1.0, 0.767)
    >>> absmean_error("laplace", 2.0) == min(absmean_error("laplace", b / 100) for b in range(50, 400))
    True
"""
from __future__ import annotations

import math

import torch

DISTRIBUTIONS = ("gaussian", "laplace")


def _moments(dist: str, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(E[|w|; |w|>d], P(|w|>d), E[w^2]) with ``d`` in units of E|w| (so E|w| = 1)."""
    if dist == "gaussian":
        sigma = math.sqrt(math.pi / 2)  # E|w| = sigma * sqrt(2/pi) = 1
        z = d / sigma
        pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
        tail = 2 * torch.special.ndtr(-z)  # P(|w| > d)
        partial = 2 * sigma * pdf  # E[|w|; |w| > d]
        return partial, tail, sigma**2
    if dist == "laplace":
        tail = torch.exp(-d)  # b = 1
        return (d + 1) * tail, tail, 2.0
    raise ValueError(f"unknown distribution {dist!r}; use one of {DISTRIBUTIONS}")


def ternary_error(dist: str, threshold, scale=None) -> torch.Tensor | float:
    """Relative MSE of ternarizing with ``threshold`` (and ``scale``; None = the optimal one).

    Both are in units of E|w|; tensors broadcast, floats give a float.
    """
    scalar = not isinstance(threshold, torch.Tensor) and (scale is None or not isinstance(scale, torch.Tensor))
    d = torch.as_tensor(threshold, dtype=torch.float64)
    partial, tail, second = _moments(dist, d)
    if scale is None:
        err = second - partial**2 / tail.clamp_min(1e-300)
    else:
        s = torch.as_tensor(scale, dtype=torch.float64)
        err = second - 2 * s * partial + s**2 * tail
    rel = err / second
    return float(rel) if scalar else rel


def optimal_scale(dist: str, threshold) -> torch.Tensor | float:
    """The MSE-optimal scale for a threshold: ``E[|w| | |w| > d]`` (units of E|w|)."""
    d = torch.as_tensor(threshold, dtype=torch.float64)
    partial, tail, _ = _moments(dist, d)
    s = partial / tail
    return float(s) if s.ndim == 0 else s


def optimal_threshold(dist: str) -> float:
    """The threshold (units of E|w|) with the least error when the scale is optimal."""
    d = torch.linspace(0.0, 3.0, 300_001, dtype=torch.float64)
    return float(d[torch.argmin(ternary_error(dist, d))])


def absmean_error(dist: str, beta: float) -> float:
    """Relative MSE of the absmean rule: scale ``beta * m``, threshold ``beta * m / 2``."""
    return ternary_error(dist, beta / 2, beta)


def twn_error(dist: str) -> float:
    """Relative MSE of TWN: threshold ``0.7 m``, scale = mean of the survivors (optimal)."""
    return ternary_error(dist, 0.7)

import pytest
import torch

from ternlib import TernaryConfig, dequantize, reconstruction_error, sparsity, ternarize
from ternlib.ternarize import expand_scales, ste_weight


def test_absmean_matches_the_papers_formula():
    w = torch.randn(32, 48)
    for beta in (1.0, 2.0, 3.0):
        s = beta * w.abs().mean()
        expected = torch.clamp(torch.round(w / s), -1, 1)
        t = ternarize(w, TernaryConfig(beta=beta))
        assert torch.equal(t.codes.float(), expected)
        assert torch.allclose(t.scales, s.reshape(1, 1))
        assert t.codes.dtype == torch.int8


def test_twn_threshold_and_scale():
    w = torch.randn(16, 40)
    t = ternarize(w, TernaryConfig(rule="twn"))
    delta = 0.7 * w.abs().mean()
    keep = w.abs() > delta
    assert torch.equal(t.codes.float(), torch.sign(w) * keep)
    assert torch.allclose(t.scales, w.abs()[keep].mean().reshape(1, 1))


@pytest.mark.parametrize("rule", ["absmean", "twn"])
@pytest.mark.parametrize("gran, group", [("row", 128), ("group", 7), ("group", 16), ("group", 1000)])
def test_each_scale_group_has_three_values(rule, gran, group):
    w = torch.randn(9, 37)
    cfg = TernaryConfig(rule=rule, granularity=gran, group_size=group)
    t = ternarize(w, cfg)
    wq = dequantize(t.codes, t.scales, group)
    g = 37 if gran == "row" else min(group, 37)
    for r in range(9):
        for start in range(0, 37, g):
            values = wq[r, start:start + g].unique()
            assert len(values) <= 3
            nz = values[values != 0].abs().unique()
            assert len(nz) <= 1  # +s and -s share one magnitude


def test_short_last_group_uses_its_own_columns():
    w = torch.ones(1, 10)
    w[0, 8:] = 10.0  # the last group (columns 8, 9) is all 10s
    t = ternarize(w, TernaryConfig(beta=1.0, granularity="group", group_size=4))
    assert t.scales.shape == (1, 3)
    assert torch.allclose(t.scales, torch.tensor([[1.0, 1.0, 10.0]]))  # not diluted by padding


def test_zero_weight_is_all_zero_codes():
    t = ternarize(torch.zeros(3, 5))
    assert (t.codes == 0).all()
    assert torch.equal(dequantize(t.codes, t.scales), torch.zeros(3, 5))
    t = ternarize(torch.zeros(3, 5), TernaryConfig(rule="twn"))
    assert (t.codes == 0).all() and torch.isfinite(t.scales).all()


@pytest.mark.parametrize(
    "w, err",
    [
        (torch.randn(5), ValueError),
        (torch.randn(2, 3, 4), ValueError),
        (torch.ones(3, 3, dtype=torch.int64), TypeError),
        (torch.tensor([[1.0, float("nan")]]), ValueError),
        (torch.empty(0, 4), ValueError),
        ([[1.0, 2.0]], TypeError),
    ],
)
def test_bad_weights_are_rejected(w, err):
    with pytest.raises(err):
        ternarize(w)


def test_dequantize_checks_shapes():
    with pytest.raises(ValueError, match="do not fit"):
        dequantize(torch.zeros(4, 4, dtype=torch.int8), torch.ones(3, 1))
    with pytest.raises(ValueError, match="group_size"):
        expand_scales(torch.ones(4, 2), (4, 8))


def test_ste_forward_is_ternary_backward_is_identity():
    w = torch.randn(6, 6, requires_grad=True)
    cfg = TernaryConfig()
    q = ste_weight(w, cfg)
    t = ternarize(w.detach(), cfg)
    assert torch.allclose(q, dequantize(t.codes, t.scales))
    (q * torch.arange(36.0).reshape(6, 6)).sum().backward()
    assert torch.equal(w.grad, torch.arange(36.0).reshape(6, 6))


def test_error_and_sparsity_move_with_beta():
    w = torch.randn(256, 256)
    sp = [sparsity(ternarize(w, TernaryConfig(beta=b)).codes) for b in (0.5, 1.0, 2.0, 3.0)]
    assert sp == sorted(sp) and sp[0] < 0.2 and sp[-1] > 0.75  # Gaussian: P(|w| < 1.5 E|w|) = 0.77
    assert 0 < reconstruction_error(w, TernaryConfig(beta=1.5)) < reconstruction_error(w, TernaryConfig(beta=4.0))

"""Integer-weight baselines (ternlib.intquant): RTN levels, GPTQ against RTN on a small problem."""
import pytest
import torch

from ternlib.intquant import IntConfig, bits_per_weight, gptq_weight, int_quantize_, mean_bits, quantize_weight


def correlated_inputs(n=512, k=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g) / k ** 0.5 + torch.eye(k)
    return torch.randn(n, k, generator=g) @ mix  # (n, K), strongly correlated columns


@pytest.mark.parametrize("bits,group", [(2, 16), (4, 16), (4, None), (8, None)])
def test_rtn_levels_and_error(bits, group):
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(1))
    q = quantize_weight(w, bits, group)
    g = 64 if group is None else group
    for j in range(0, 64, g):
        for row in q[:, j:j + g]:
            assert len(torch.unique(row)) <= 2 ** bits
    # max error: half a step of the group's range
    for j in range(0, 64, g):
        part = w[:, j:j + g]
        step = (part.max(1).values.clamp(min=0) - part.min(1).values.clamp(max=0)) / (2 ** bits - 1)
        assert ((q[:, j:j + g] - part).abs().max(1).values <= step / 2 + 1e-6).all()


def test_error_falls_with_bits():
    w = torch.randn(16, 128, generator=torch.Generator().manual_seed(2))
    errs = [torch.linalg.norm(quantize_weight(w, b, 16) - w) for b in (2, 3, 4, 8)]
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.01 * torch.linalg.norm(w)


def test_gptq_with_identity_hessian_is_rtn():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(3))
    for group in (16, None):
        torch.testing.assert_close(gptq_weight(w, torch.eye(64), 2, group, damp=0.0), quantize_weight(w, 2, group))


def test_gptq_blocking_does_not_change_the_result():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(4))
    x = correlated_inputs()
    h = 2 * x.T @ x / len(x)
    torch.testing.assert_close(gptq_weight(w, h, 3, 16, block_size=1), gptq_weight(w, h, 3, 16, block_size=32))


@pytest.mark.parametrize("bits,group", [(2, 16), (3, 32), (4, None)])
def test_gptq_beats_rtn_on_the_output(bits, group):
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(5))
    x = correlated_inputs()
    h = 2 * x.T @ x / len(x)

    def out_err(q):
        return float(torch.linalg.norm(x @ (q - w).T))

    rtn, gptq = out_err(quantize_weight(w, bits, group)), out_err(gptq_weight(w, h, bits, group))
    assert gptq < 0.9 * rtn, (gptq, rtn)


def test_int_quantize_model_rtn_and_gptq():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    x = torch.randn(256, 32)
    ref = model(x).detach()
    with pytest.raises(ValueError, match="calibration"):
        int_quantize_(model, IntConfig(bits=2, group_size=16, method="gptq"), progress=False)
    rtn_model = torch.nn.Sequential(*[m for m in __import__("copy").deepcopy(model)])
    int_quantize_(rtn_model, IntConfig(bits=2, group_size=16), progress=False)
    report = int_quantize_(model, IntConfig(bits=2, group_size=16, method="gptq"), calibration=lambda m: m(x),
                           progress=False)
    assert set(report) == {"0", "2"} and model.int_quant.name == "int2-g16-gptq"
    assert mean_bits(report, model) == pytest.approx(2 + 18 / 16)
    err_gptq = torch.linalg.norm(model(x) - ref)
    err_rtn = torch.linalg.norm(rtn_model(x) - ref)
    assert err_gptq < err_rtn


def test_config_and_bits():
    assert bits_per_weight(IntConfig(bits=4, group_size=128), 384) == pytest.approx(4 + 20 / 128)
    assert bits_per_weight(IntConfig(bits=8, group_size=None), 384) == pytest.approx(8 + 24 / 384)
    for bad in ({"bits": 1}, {"bits": 9}, {"group_size": 0}, {"method": "awq"}):
        with pytest.raises(ValueError):
            IntConfig(**bad)
    with pytest.raises(ValueError, match="2-d"):
        quantize_weight(torch.randn(3), 4)

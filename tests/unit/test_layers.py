import pytest
import torch
import torch.nn.functional as F

from ternlib import PackedTernary, TernaryConfig, TernaryLinear, available_kernels, register_kernel, ternarize
from ternlib import kernels as K

CONFIGS = [
    TernaryConfig(),
    TernaryConfig(beta=1.0, granularity="row"),
    TernaryConfig(rule="twn", granularity="group", group_size=8, packing="5trit"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.short() + c.packing)
def test_frozen_forward_equals_training_forward(config):
    lin = torch.nn.Linear(37, 11)
    layer = TernaryLinear.from_linear(lin, config)
    x = torch.randn(4, 5, 37)  # (B, T, K)
    y_train = layer(x)
    w_eff = layer.effective_weight()
    layer.freeze()
    assert layer.weight is None and layer.frozen
    assert layer.packed.dtype == torch.uint8
    assert torch.equal(layer.effective_weight(), w_eff)
    torch.testing.assert_close(layer(x), y_train)
    assert layer(x).shape == (4, 5, 11)


def test_gradients_reach_latent_weights_and_bias():
    layer = TernaryLinear.from_linear(torch.nn.Linear(16, 8))
    layer(torch.randn(3, 16)).pow(2).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.bias.grad is not None


def test_extra_repr_shows_the_recipe():
    r = repr(TernaryLinear(4, 2, config=TernaryConfig(beta=1.5, granularity="group", group_size=2)))
    for part in ("rule=absmean", "beta=1.5", "granularity=group", "group_size=2", "packing=2bit", "frozen=False"):
        assert part in r
    assert "beta" not in repr(TernaryLinear(4, 2, config=TernaryConfig(rule="twn")))


def test_wrong_input_width_is_a_clear_error():
    layer = TernaryLinear(16, 4)
    with pytest.raises(ValueError, match="16 features"):
        layer(torch.randn(2, 15))
    layer.freeze()
    with pytest.raises(ValueError, match="16 features"):
        layer(torch.randn(2, 17))


def test_misuse():
    with pytest.raises(TypeError, match="nn.Linear"):
        TernaryLinear.from_linear(torch.nn.Conv1d(2, 2, 1))
    with pytest.raises(TypeError, match="TernaryConfig"):
        TernaryLinear(2, 2, config={"beta": 2})
    with pytest.raises(RuntimeError, match="freeze"):
        TernaryLinear(2, 2).packed_weight()


def test_reference_kernel_is_dense_linear_on_dequantized_weight():
    w = torch.randn(13, 29)
    cfg = TernaryConfig(granularity="row")
    t = ternarize(w, cfg)
    pw = PackedTernary.from_codes(t.codes, t.scales, cfg)
    x, b = torch.randn(7, 29), torch.randn(13)
    ref = F.linear(x, t.codes.float() * t.scales, b)
    assert torch.equal(K.ternary_linear(x, pw, b, kernel="reference"), ref)
    for dtype in (torch.bfloat16, torch.float16):
        assert K.ternary_linear(x.to(dtype), pw, b).dtype == dtype


def test_dispatch_picks_highest_priority_supported_kernel():
    calls = []

    @register_kernel("test-small-m", priority=1000, supports=lambda x, w: x.shape[0] <= 2)
    def small(x, w, bias):
        calls.append(x.shape[0])
        return K.reference_kernel(x, w, bias)

    try:
        assert available_kernels()[0] == "test-small-m"
        layer = TernaryLinear(8, 4).freeze()
        layer(torch.randn(2, 8))
        layer(torch.randn(5, 8))  # not supported -> the next kernel
        assert calls == [2]
        layer.kernel = "reference"
        layer(torch.randn(1, 8))
        assert calls == [2]
        layer.kernel = "test-small-m"
        with pytest.raises(ValueError, match="does not support"):
            layer(torch.randn(5, 8))
        layer.kernel = "nope"
        with pytest.raises(ValueError, match="unknown ternary kernel"):
            layer(torch.randn(1, 8))
    finally:
        K.unregister_kernel("test-small-m")
    assert "test-small-m" not in available_kernels()

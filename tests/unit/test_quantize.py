import pytest
import torch
import torch.nn as nn

from ternlib import (
    Int8Embedding,
    Int8EmbeddingConfig,
    TernaryConfig,
    TernaryLinear,
    freeze_,
    quantize_,
    ternary_modules,
)


def _linear_names(model):
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def _check_three_values(model):
    for name, layer in ternary_modules(model):
        codes = layer.codes()
        assert set(codes.unique().tolist()) <= {-1, 0, 1}, name
        w = layer.effective_weight()
        if layer.config.granularity == "tensor":
            assert w.unique().numel() <= 3, name


def test_minilm_all_37_linears(minilm):
    assert len(_linear_names(minilm)) == 37
    quantize_(minilm, TernaryConfig())
    assert len(list(ternary_modules(minilm))) == 37
    assert _linear_names(minilm) == []
    _check_three_values(minilm)
    emb = minilm.encode(["a ternary sentence", "another one"], convert_to_tensor=True, show_progress_bar=False)
    assert emb.shape == (2, 384) and torch.isfinite(emb).all()


def test_minilm_gradients_reach_latent_weights(minilm):
    quantize_(minilm)
    minilm.train()
    feats = minilm.preprocess(["gradients flow through the straight-through estimator"])
    out = minilm(feats)["sentence_embedding"]  # (1, 384), unit norm
    (out * torch.randn_like(out)).sum().backward()
    layers = [(n, l) for n, l in ternary_modules(minilm) if "pooler" not in n]  # mean pooling skips the pooler
    assert len(layers) == 36
    assert all(l.weight.grad is not None and l.weight.grad.abs().sum() > 0 for _, l in layers)


def _tiny_models():
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertModel,
        RobertaConfig,
        RobertaModel,
        ViTConfig,
        ViTForImageClassification,
        ViTModel,
    )

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    vit_cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, num_labels=5, **small)
    dcfg = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64, num_labels=3)
    rcfg = RobertaConfig(vocab_size=100, max_position_embeddings=40, **small)
    return {
        "vit": (ViTModel(vit_cfg, add_pooling_layer=True), {"pixel_values": torch.randn(2, 3, 32, 32)}),
        "vit-cls": (ViTForImageClassification(vit_cfg), {"pixel_values": torch.randn(2, 3, 32, 32)}),
        "distilbert": (DistilBertModel(dcfg), {"input_ids": torch.randint(0, 100, (2, 7))}),
        "distilbert-cls": (DistilBertForSequenceClassification(dcfg), {"input_ids": torch.randint(0, 100, (2, 7))}),
        "roberta": (RobertaModel(rcfg), {"input_ids": torch.randint(3, 100, (2, 7))}),
    }


@pytest.mark.parametrize("name", ["vit", "vit-cls", "distilbert", "distilbert-cls", "roberta"])
@pytest.mark.parametrize("config", [TernaryConfig(), TernaryConfig(rule="twn", granularity="group", group_size=16)],
                         ids=["paper", "twn-group"])
def test_transformers_models(name, config):
    model, inputs = _tiny_models()[name]
    before = _linear_names(model)
    heads = [n for n in before if n.split(".")[-1] in ("classifier", "pre_classifier")]
    quantize_(model, config)
    assert sorted(_linear_names(model)) == sorted(heads)  # everything but task heads converted
    assert len(list(ternary_modules(model))) == len(before) - len(heads) > 0
    _check_three_values(model)
    model.train()
    out = model(**inputs)
    loss = (out.logits if hasattr(out, "logits") else out.last_hidden_state).pow(2).mean()
    if getattr(out, "pooler_output", None) is not None:
        loss = loss + out.pooler_output.pow(2).mean()
    loss.backward()
    for n, layer in ternary_modules(model):
        assert layer.weight.grad is not None, n
    model.eval()
    with torch.no_grad():
        ref = model(**inputs)[0]
        freeze_(model)
        torch.testing.assert_close(model(**inputs)[0], ref)


def test_idempotent_and_conflicting_configs():
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    quantize_(m, TernaryConfig(beta=1.0))
    first = [id(l) for _, l in ternary_modules(m)]
    quantize_(m, TernaryConfig(beta=1.0))
    assert [id(l) for _, l in ternary_modules(m)] == first
    with pytest.raises(ValueError, match="already ternarized with a different config"):
        quantize_(m, TernaryConfig(beta=2.0))


def test_filter_fn_and_default_skip():
    m = nn.ModuleDict({"encoder": nn.Linear(4, 4), "classifier": nn.Linear(4, 2), "keep": nn.Linear(4, 4)})
    quantize_(m)
    assert isinstance(m["encoder"], TernaryLinear) and type(m["classifier"]) is nn.Linear
    m2 = nn.ModuleDict({"a": nn.Linear(4, 4), "b": nn.Linear(4, 4)})
    quantize_(m2, filter_fn=lambda mod, name: name == "b")
    assert type(m2["a"]) is nn.Linear and isinstance(m2["b"], TernaryLinear)


def test_misuse_errors():
    with pytest.raises(TypeError, match="nn.Module"):
        quantize_("bert")
    with pytest.raises(TypeError, match="TernaryConfig"):
        quantize_(nn.Linear(2, 2), {"beta": 2})
    with pytest.raises(TypeError, match="callable"):
        quantize_(nn.Sequential(nn.Linear(2, 2)), filter_fn="encoder")
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize_(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="no TernaryLinear"):
        freeze_(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="no nn.Embedding"):
        quantize_(nn.Sequential(nn.Linear(2, 2)), Int8EmbeddingConfig())


def test_top_level_linear_cannot_be_replaced_in_place():
    # quantize_ swaps children; a bare nn.Linear has no parent to swap it in
    lin = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="no nn.Linear|top-level"):
        quantize_(lin)


def test_int8_embeddings():
    emb = nn.Embedding(50, 16, padding_idx=0)
    m = nn.Sequential(emb)
    ref = emb.weight.detach().clone()
    quantize_(m, Int8EmbeddingConfig())
    assert isinstance(m[0], Int8Embedding) and m[0].qweight.dtype == torch.int8
    ids = torch.randint(0, 50, (3, 5))
    err = (m(ids) - ref[ids]).abs().max()
    assert err <= ref.abs().max() / 127  # half a step of the largest row, at most
    small = nn.Sequential(nn.Embedding(2, 4), nn.Embedding(500, 4))
    quantize_(small, Int8EmbeddingConfig(min_rows=100))
    assert type(small[0]) is nn.Embedding and isinstance(small[1], Int8Embedding)

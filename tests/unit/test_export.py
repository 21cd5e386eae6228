"""ternlib.export: a ternary SentenceTransformer written to ONNX with its codes as exact int8 initializers."""
import copy

import pytest
import torch

from ternlib import Int8EmbeddingConfig, OrtEncoder, TernaryConfig, freeze_, quantize_
from ternlib.export import export_ternary_onnx, float_copy
from ternlib.layers import TernaryLinear

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

TEXTS = ["one sentence", "and another, longer sentence with more words in it", "a third", "a fourth one"]


def _module(model, suffix):
    return next(m for n, m in model.named_modules() if n.endswith(suffix))


def _ternary(st, config=None):
    return freeze_(quantize_(copy.deepcopy(st), config or TernaryConfig(granularity="row")))


def test_export_stores_codes_exactly_and_onnxruntime_reproduces_the_model(tiny_sentence_transformer, tmp_path):
    model = quantize_(_ternary(tiny_sentence_transformer), Int8EmbeddingConfig(min_rows=1000))
    report = export_ternary_onnx(model, tmp_path / "t.onnx", check_texts=TEXTS)
    n_layers = sum(isinstance(m, TernaryLinear) for m in model.modules())
    # 2 layers x 6 linears; BERT's pooler is ternary too but the sentence embedding never reads it
    assert report["ternary layers"] == n_layers == 13 and report["ternary layers in the graph"] == 12
    assert report["min cosine to the model"] > 0.98
    stored = [onnx.numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "t.onnx")).graph.initializer
              if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
    layer = _module(model, "encoder.layer.0.intermediate.dense")
    want = (127 * layer.codes().to(torch.int8)).T.numpy()
    assert any(a.shape == want.shape and (a == want).all() for a in stored)
    got = OrtEncoder(model, tmp_path / "t.onnx", report["inputs"]).encode(TEXTS, convert_to_numpy=True,
                                                                        normalize_embeddings=True)
    assert got.shape == (len(TEXTS), 32) and abs(float((got**2).sum(1).min()) - 1) < 1e-5


def test_export_fails_when_the_int8_weights_are_not_the_codes(tiny_sentence_transformer, tmp_path, monkeypatch):
    """Per-tensor int8 cannot hold per-row scales exactly: the check must catch it, not write a lossy file."""
    import onnxruntime.quantization as q

    real = q.quantize_dynamic
    monkeypatch.setattr(q, "quantize_dynamic", lambda *a, **k: real(*a, **{**k, "per_channel": False}))
    with pytest.raises(AssertionError, match="not stored exactly"):
        export_ternary_onnx(_ternary(tiny_sentence_transformer), tmp_path / "t.onnx")


def test_export_refuses_group_scales_and_float_models(tiny_sentence_transformer, tmp_path):
    grouped = _ternary(tiny_sentence_transformer, TernaryConfig(granularity="group", group_size=16))
    with pytest.raises(ValueError, match="granularity"):
        export_ternary_onnx(grouped, tmp_path / "g.onnx")
    with pytest.raises(ValueError, match="no TernaryLinear"):
        export_ternary_onnx(tiny_sentence_transformer, tmp_path / "f.onnx")


def test_export_names_the_install_command_when_onnxruntime_is_missing(tiny_sentence_transformer, tmp_path,
                                                                       monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ImportError, match="pip install onnxruntime onnx"):
        export_ternary_onnx(_ternary(tiny_sentence_transformer), tmp_path / "t.onnx")


def test_float_copy_holds_the_effective_weights(tiny_sentence_transformer):
    model = _ternary(tiny_sentence_transformer)
    plain, codes = float_copy(model)
    assert not any(isinstance(m, TernaryLinear) for m in plain.modules()) and len(codes) == 13
    src, dst = (_module(m, "encoder.layer.1.output.dense") for m in (model, plain))
    torch.testing.assert_close(dst.weight, src.effective_weight(), rtol=0, atol=0)
    name = next(n for n in codes if n.endswith("encoder.layer.1.output.dense"))
    torch.testing.assert_close(codes[name], src.codes(), rtol=0, atol=0)


def test_export_command_writes_a_checkpoint_and_explains_refusals(tiny_sentence_transformer, tmp_path, capsys):
    from ternlib import save
    from ternlib.cli import main

    save(_ternary(tiny_sentence_transformer), tmp_path / "ckpt")
    assert main(["export", str(tmp_path / "ckpt"), str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 0 and '"ternary layers in the graph": 12' in capsys.readouterr().out
    save(_ternary(tiny_sentence_transformer, TernaryConfig(granularity="group", group_size=16)), tmp_path / "g")
    with pytest.raises(SystemExit, match="ternlib export: .*granularity"):
        main(["export", str(tmp_path / "g"), str(tmp_path / "g.onnx")])

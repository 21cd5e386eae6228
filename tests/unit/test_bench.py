"""The benchmark's machinery on tiny cases (speed targets are checked by running it, not here)."""
import json

import pytest
import torch

from ternlib import bench
from ternlib.cli import main


def test_interleaved_medians_rotate_order_and_respect_min_seconds():
    order = []
    t = bench.interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=0)
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    assert order == ["a", "b", "b", "a", "a", "b"]  # each repeat starts one further along


def test_layer_bench_rows_table_and_plot(tmp_path):
    rows = bench.layer_bench([("tiny", 64, 48)], [1, 3], repeats=2, min_seconds=0.0, progress=False)
    assert [r["M"] for r in rows] == [1, 3]
    for r in rows:
        assert set(r["ratio"]) == {"fp32", "bf16", "int8 dynamic", "ternary a8", "ternary fp-act"}
        assert r["ratio"]["fp32"] == 1.0 and all(v > 0 for v in r["ms"].values())
    res = {"machine": bench.machine(), "layers": rows,
           "encoder": {"workloads": [{"workload": "w", "ms": rows[0]["ms"], "ratio": rows[0]["ratio"]}]}}
    text = bench.table(res)
    assert "| tiny | 1 |" in text and "| w |" in text
    bench.plot(res, tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 1000
    json.dumps(res)  # JSON-ready


def test_crossover_bench_reports_where_packed_wins():
    res = bench.crossover_bench([(64, 32), (32, 64)], tokens=(1, 2), repeats=1, progress=False)
    assert [r["M"] for r in res["rows"]] == [1, 2]
    assert res["largest M where packed wins"] in (None, 1, 2)


def test_encoder_bench_small(monkeypatch):
    monkeypatch.setattr(bench, "onnxruntime_missing", lambda: "onnxruntime not installed: pip install onnxruntime onnx")
    with pytest.warns(UserWarning, match="pip install onnxruntime"):  # the other rows still run
        res = bench.encoder_bench(n_sentences=4, batch_size=2, repeats=1, query_repeats=1, progress=False)
    assert [w["workload"] for w in res["workloads"]] == ["one query", "4 sentences, batch 2"]
    cos = res["cosine to fp32 (first 64 sentences)"]
    assert cos["fp32"] == pytest.approx(1.0, abs=1e-5) and cos["bf16"] > 0.99
    assert 0.5 < cos["int8 dynamic"] <= 1.0 + 1e-5
    assert set(res["workloads"][0]["ratio"]) == {"fp32", *bench.VARIANTS, bench.ST_ENCODE_VARIANT, bench.BF16_VARIANT}
    assert "skipped" in res["onnxruntime"] and res["pytorch forward"] == "lean BERT"
    # the same model either way; with int8 activations LeanEncoder's attention rounds differently, which can move
    # an activation by one int8 step (chapter 4 measures it: book-suite scores alike)
    assert cos[bench.ST_ENCODE_VARIANT] == pytest.approx(cos["ternary a8"], abs=2e-3)
    text = bench.table({"encoder": res})
    assert "ort int8" not in text and "ONNX Runtime: onnxruntime not installed" in text


def test_onnxruntime_peers_match_torch_on_a_tiny_model(tiny_sentence_transformer, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    st = tiny_sentence_transformer
    texts = ["one sentence", "and another, longer sentence with more words in it", "a third", "a fourth one"]
    encoders, info = bench.ort_encoders(st, tmp_path, texts)  # raises if the FP32 export disagrees with torch
    assert set(encoders) == set(bench.ORT_VARIANTS)
    assert info["max abs diff ort fp32 vs torch fp32"] <= 1e-4
    assert info["int8 onnx bytes"] < info["fp32 onnx bytes"]
    ref = st.encode(texts, convert_to_tensor=True, show_progress_bar=False)
    fp = encoders["ort fp32"].encode(texts, batch_size=3)  # rows come back in the order of the texts
    torch.testing.assert_close(fp, ref, atol=1e-4, rtol=0)
    q = encoders["ort int8"].encode(texts, batch_size=3)
    assert torch.nn.functional.cosine_similarity(q, ref).min() > 0.95
    res = {"encoder": {"workloads": [{"workload": "w", "ms": {"fp32": 1.0, **{v: 1.0 for v in bench.VARIANTS},
                                                               **{v: 0.5 for v in bench.ORT_VARIANTS}},
                                      "ratio": {"fp32": 1.0, **{v: 1.0 for v in bench.VARIANTS},
                                                **{v: 0.5 for v in bench.ORT_VARIANTS}}}]}}
    assert bench.encoder_variants(res) == bench.VARIANTS + bench.ORT_VARIANTS
    assert "| ort fp32 | ort int8 |" in bench.table(res)


def test_bench_cli_help(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "--quick" in capsys.readouterr().out


def test_roofs_and_linear_time_split(minilm):
    r = bench.roofs(copy_mb=1, shape=(8, 16, 32), repeats=1)
    assert r["bandwidth bytes/s"] > 0 and r["fp32 ops/s"] > 0 and r["int8 ops/s"] > 0
    split = bench.linear_time_split(minilm, ["one sentence", "and another one"])
    assert 0 < split["linear s"] < split["total s"]
    assert split["other s"] == pytest.approx(split["total s"] - split["linear s"])


def test_a_folder_that_is_not_a_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a ternlib checkpoint"):
        bench.split_bench(checkpoint=tmp_path, n_sentences=4, repeats=1)


def test_encoder_bench_at_another_shape(monkeypatch):
    monkeypatch.setitem(bench.ENCODER_SHAPES, "tiny", (32, 2, 2, 64))  # BERT-large's recipe at a test's size
    monkeypatch.setattr(bench, "onnxruntime_missing", lambda: "onnxruntime not installed")
    enc = bench.shaped_encoder("tiny")
    assert enc[0].auto_model.config.hidden_size == 32 and enc.encode(["a b c"]).shape == (1, 32)
    with pytest.warns(UserWarning):
        res = bench.encoder_bench(n_sentences=2, batch_size=2, repeats=1, query_repeats=1, progress=False, shape="tiny")
    assert res["shape"] == "tiny" and res["weights"].startswith("random")
    assert set(res["workloads"][0]["ratio"]) == {"fp32", *bench.VARIANTS, bench.ST_ENCODE_VARIANT, bench.BF16_VARIANT}
    assert "tiny (random (speed only)): one query" in bench.table({"encoder shapes": {"tiny": res}})
    compiled = bench.compiled_encoder(enc, backend="aot_eager")  # the bench's compiled rows, without inductor's wait
    ternary = bench._ternary_encoder(enc, None, "int8")[0]
    texts = ["a b c", "a much longer sentence than the first one", "x"]
    assert torch.allclose(compiled.encode(texts, convert_to_tensor=True), enc.encode(texts, convert_to_tensor=True),
                          atol=1e-5)
    assert torch.allclose(bench.compiled_encoder(ternary, backend="aot_eager").encode(texts, convert_to_tensor=True),
                          ternary.encode(texts, convert_to_tensor=True), atol=1e-4)
    with pytest.raises(ValueError, match="MiniLM's shapes"):
        bench.encoder_bench("some/checkpoint", shape="tiny")
    with pytest.raises(ValueError, match="unknown encoder shape"):
        bench.shaped_encoder("bert-huge")

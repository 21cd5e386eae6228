"""The benchmark's machinery on tiny cases (speed targets are checked by running it, not here)."""
import json

import pytest

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
    res = bench.encoder_bench(n_sentences=4, batch_size=2, repeats=1, query_repeats=1, progress=False)
    assert [w["workload"] for w in res["workloads"]] == ["one query", "4 sentences, batch 2"]
    cos = res["cosine to fp32 (first 64 sentences)"]
    assert cos["fp32"] == pytest.approx(1.0, abs=1e-5) and cos["bf16"] > 0.99
    assert 0.5 < cos["int8 dynamic"] <= 1.0 + 1e-5


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

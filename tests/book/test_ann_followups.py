"""experiments/ann_followups.py: the top-1 miss count, and a run on a small sample writes what chapter 6 reads."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
ROOT = Path(__file__).parents[2]
spec = importlib.util.spec_from_file_location("ann_followups", ROOT / "experiments" / "ann_followups.py")
followups = importlib.util.module_from_spec(spec)
spec.loader.exec_module(followups)


def test_top1_misses():
    exact = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    found = np.array([[0, 1], [3, 2], [5, 4], [6, 7]])  # rows 1 and 2 miss their exact top-1
    relevant = [[0], [2], [9], [9]]  # exact top-1 relevant for rows 0 and 1
    m = followups.top1_misses(found, exact, relevant)
    assert m["all queries"] == 0.5
    assert m["queries whose exact top-1 is relevant"] == 0.5 and m["queries whose exact top-1 is relevant (count)"] == 2


@pytest.mark.slow
def test_sample_run_has_what_chapter_6_reads(tmp_path):
    out = tmp_path / "f.json"
    followups.main(["--sample", "30", "--threads", "1", "--qps-queries", "5", "--no-cache", "--out", str(out)])
    res = json.loads(out.read_text())
    sweep = res["efsearch"]
    assert {r["encoder"] for r in sweep} == {"FP32", "ternary"} and len(sweep) == 2 * len(followups.EF_SEARCH)
    for r in sweep:
        assert 0 < r["recall@10 vs own exact"] <= 1 and r["qps batch 1"] > 0
    assert set(res["top1 misses at efSearch 64"]) == {"FP32", "ternary"}
    pairs = {(r["documents"], r["queries"], r["index"]): r for r in res["encoder pairs"]}
    assert set(pairs) == {(d, q, i) for d in ("FP32", "ternary") for q in ("FP32", "ternary") for i in ("Flat", "HNSW")}
    for enc in ("FP32", "ternary"):  # an encoder with itself and exact search is the stored exact figure
        assert pairs[enc, enc, "Flat"]["ndcg@10"] == res["exact"][enc]["ndcg@10"]
        assert pairs[enc, enc, "HNSW"]["params"] == "efSearch=64"  # the preset, after the sweep
    assert res["exact"]["FP32"]["ndcg@10 vs FP32+Flat"] == 1.0


def test_targets_read_one_benchmark_row():
    res = {"rows": [{"encoder": "ternary", "index": "HNSW", "ndcg@10": 0.3, "ndcg@10 vs FP32+Flat": 0.98,
                     "e2e ms": 1.0, "e2e vs FP32+Flat": 0.6}],
           "reference ndcg@10": 0.306, "latency": {"reference": "FP32+Flat", "ms": {"FP32+Flat": 1.667}}}
    assert [t["met"] for t in followups.targets(res)] == [True, False]
    assert followups.targets(res, "nobody") == []

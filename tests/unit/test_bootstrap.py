"""Bootstrap intervals of retention (ternlib.evaluation.bootstrap) and the per-item results they need."""
import json

import numpy as np
import pytest

from ternlib.evaluation import CATEGORIES, TASKS, bootstrap_retention, category_retention, save_results
from ternlib.evaluation.suite import load_results


def fake(seed, shift=0.0, n_q=400, n_pairs=300, n_test=200):
    """A results dict with per-item results for one task of each kind (plus a grouped one)."""
    rng = np.random.default_rng(seed)
    human = np.random.default_rng(99).normal(size=n_pairs)
    cos = human + rng.normal(scale=1.0 + shift, size=n_pairs)
    ndcg = np.clip(rng.normal(0.4 - shift / 10, 0.3, n_q), 0, 1)
    correct = (rng.random(n_test) < 0.8 - shift / 10).astype(int)
    groups = np.repeat(np.arange(n_test // 10), 10)
    from ternlib.evaluation.metrics import spearman

    items = {"wordnet-retrieval": {"ndcg@10": ndcg.tolist()},
             "simlex999": {"cosine": cos.tolist(), "human": human.tolist()},
             "polarity": {"correct": correct.tolist()},
             "brown-genre": {"correct": correct.tolist(), "group": groups.tolist()}}
    tasks = {"wordnet-retrieval": {"main": float(ndcg.mean())}, "simlex999": {"main": spearman(cos, human)},
             "polarity": {"main": float(correct.mean())}, "brown-genre": {"main": float(correct.mean())}}
    return {"tasks": tasks, "items": items}


def test_same_model_gives_one_and_a_zero_width_interval():
    r = fake(0)
    b = bootstrap_retention(r, r, n_boot=200)
    for s in [*b["tasks"].values(), *b["categories"].values(), b["headline"]]:
        assert (s["retention"], s["low"], s["high"]) == pytest.approx((1.0, 1.0, 1.0))


def test_intervals_hold_the_estimate_and_shrink_with_more_items():
    small = bootstrap_retention(fake(1, 0.5, n_q=100), fake(2, n_q=100), n_boot=500)["tasks"]["wordnet-retrieval"]
    big = bootstrap_retention(fake(1, 0.5, n_q=1600), fake(2, n_q=1600), n_boot=500)["tasks"]["wordnet-retrieval"]
    for s in (small, big):
        assert s["low"] < s["retention"] < s["high"]
    assert (big["high"] - big["low"]) < 0.5 * (small["high"] - small["low"])   # 16x the items: about 1/4 the width


def test_categories_and_headline():
    b = bootstrap_retention(fake(3, 0.3), fake(4), n_boot=300)
    assert set(b["categories"]) <= set(CATEGORIES)
    assert b["categories"]["classification"]["tasks"] == ["polarity", "brown-genre"]
    cls = b["categories"]["classification"]["retention"]
    assert cls == pytest.approx(np.mean([b["tasks"]["polarity"]["retention"], b["tasks"]["brown-genre"]["retention"]]))
    assert "word similarity" not in b["headline"]["categories"]  # simlex is apart from the headline
    assert b["headline"]["retention"] == pytest.approx(np.mean(
        [b["categories"][c]["retention"] for c in b["headline"]["categories"]]))
    assert list(category_retention(fake(3, 0.3), fake(4)).values()) == sorted(category_retention(fake(3, 0.3),
                                                                                                fake(4)).values())


def test_grouped_items_are_resampled_by_group():
    """Brown's test passages come in documents; resampling whole documents widens the interval when the
    documents differ (here: each document all right or all wrong)."""
    n = 200
    correct = np.repeat(np.random.default_rng(0).random(n // 10) < 0.7, 10).astype(int).tolist()
    base = {"tasks": {"brown-genre": {"main": 0.8}, "polarity": {"main": 0.8}},
            "items": {"brown-genre": {"correct": [1] * 160 + [0] * 40, "group": list(np.repeat(np.arange(20), 10))},
                      "polarity": {"correct": [1] * 160 + [0] * 40}}}
    acc = float(np.mean(correct))
    model = {"tasks": {"brown-genre": {"main": acc}, "polarity": {"main": acc}},
             "items": {"brown-genre": {"correct": correct, "group": list(np.repeat(np.arange(20), 10))},
                       "polarity": {"correct": correct}}}
    b = bootstrap_retention(model, base, n_boot=1000)["tasks"]
    assert (b["brown-genre"]["high"] - b["brown-genre"]["low"]) > 1.5 * (b["polarity"]["high"] - b["polarity"]["low"])


def test_clear_errors():
    r = fake(0)
    with pytest.raises(ValueError, match="per-item"):
        bootstrap_retention({"tasks": r["tasks"]}, r)
    short = fake(0, n_q=50)
    with pytest.raises(ValueError, match="same sizes"):
        bootstrap_retention(short, r)


def test_items_survive_save_and_load(tmp_path):
    r = {**fake(5), "fast": True, "seed": 0}
    save_results(r, tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    assert len(text.splitlines()) < 40   # each per-item list on one line
    back = load_results(tmp_path / "r.json")
    json.loads(text)
    np.testing.assert_allclose(back["items"]["simlex999"]["cosine"], r["items"]["simlex999"]["cosine"], rtol=1e-5)
    b1, b2 = bootstrap_retention(back, back, n_boot=50), bootstrap_retention(r, r, n_boot=50)
    assert b1["headline"]["retention"] == pytest.approx(b2["headline"]["retention"])


def test_every_task_has_a_category():
    assert {t.category for t in TASKS.values()} <= set(CATEGORIES)

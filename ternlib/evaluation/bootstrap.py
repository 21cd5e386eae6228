"""Uncertainty of retention: paired bootstrap intervals over evaluation items, and category averages.

A retention (ternary score / FP32 score) measured on 100 polarity sentences or 353 word pairs is an
estimate. ``bootstrap_retention`` resamples the evaluation items with replacement (the same resample for
the model and its baseline: a paired bootstrap), recomputes both scores and their ratio, and reports the
2.5th and 97.5th percentiles of the ratio: a 95% interval. Items are queries (retrieval: nDCG@10 per
query), pairs (similarity: Spearman over the resampled pairs) and test texts (classification: accuracy;
Brown's test passages are resampled by document, as they were split). Category averages (retrieval,
classification, sentence similarity, word similarity; ``suite.CATEGORIES``) are the mean retention of
their tasks in every replicate, so their intervals are bootstrap intervals too.

Both results must come from ``evaluate(..., items=True)`` (the default) with the same sizes and seed.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base = {"tasks": {"polarity": {"main": 0.75}}, "items": {"polarity": {"correct": [1] * 75 + [0] * 25}}}
    >>> model = {"tasks": {"polarity": {"main": 0.70}}, "items": {"polarity": {"correct": [1] * 70 + [0] * 30}}}
    >>> r = bootstrap_retention(model, base, n_boot=200)["tasks"]["polarity"]
    >>> round(r["retention"], 4), r["low"] < r["retention"] < r["high"]
    (0.9333, True)
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .suite import CATEGORIES, HEADLINE_CATEGORIES, TASKS

__all__ = ["bootstrap_retention", "category_retention", "headline_retention"]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank), for 2-d arrays."""
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of x with the same row of y: (R, n), (R, n) -> (R,)."""
    rx, ry = _ranks(x), _ranks(y)
    rx = rx - rx.mean(1, keepdims=True)
    ry = ry - ry.mean(1, keepdims=True)
    return (rx * ry).sum(1) / np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))


def _task_replicates(name: str, model: Mapping, base: Mapping, idx_fn) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of (model score, baseline score) for one task."""
    kind = TASKS[name].kind
    if kind == "retrieval":
        a, b = np.asarray(model["ndcg@10"], float), np.asarray(base["ndcg@10"], float)
        _check(name, a, b)
        idx = idx_fn(len(a), None)
        return a[idx].mean(1), b[idx].mean(1)
    if kind == "similarity":
        a, b = np.asarray(model["cosine"], float), np.asarray(base["cosine"], float)
        _check(name, a, b)
        human = np.asarray(model["human"], float)
        idx = idx_fn(len(a), None)
        h = human[idx]
        return _spearman_rows(a[idx], h), _spearman_rows(b[idx], h)
    a, b = np.asarray(model["correct"], float), np.asarray(base["correct"], float)
    _check(name, a, b)
    groups = model.get("group")
    if groups is None:
        idx = idx_fn(len(a), None)  # (n_boot, n)
        return a[idx].mean(1), b[idx].mean(1)
    idx = idx_fn(len(a), np.asarray(groups))  # one index array per draw: whole groups, so lengths differ
    return np.array([a[i].mean() for i in idx]), np.array([b[i].mean() for i in idx])


def _check(name: str, a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: the model has {len(a)} items and the baseline {len(b)}: evaluate both with "
                         f"the same sizes and seed")


def bootstrap_retention(results: Mapping, baseline: Mapping, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> dict[str, Any]:
    """Retention of ``results`` relative to ``baseline`` per task and per category, with paired bootstrap
    intervals over evaluation items.

    Returns ``{"tasks": {name: {"retention", "low", "high"}}, "categories": {category: {...}},
    "headline": {...}, "n_boot": int, "level": float}``; "headline" is the mean over the sentence-level
    categories (``HEADLINE_CATEGORIES``: word similarity is reported apart). Retention is the ratio of the
    full-sample scores; low/high the interval's ends.
    """
    for label, r in (("results", results), ("baseline", baseline)):
        if not isinstance(r, Mapping) or not isinstance(r.get("items"), Mapping):
            raise ValueError(f"{label} has no per-item results: run evaluate(..., items=True) (the default) "
                             f"or `ternlib eval`, which stores them")
    if n_boot < 10:
        raise ValueError(f"n_boot must be >= 10, got {n_boot}")
    names = [n for n in results["tasks"] if n in baseline["tasks"] and n in TASKS]
    missing = [n for n in names if n not in results["items"] or n not in baseline["items"]]
    if missing:
        raise ValueError(f"no per-item results for {', '.join(missing)}")
    rng = np.random.default_rng(seed)

    def idx_fn(n: int, groups: np.ndarray | None):
        if groups is None:
            return rng.integers(0, n, size=(n_boot, n))
        ids, inverse = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(len(ids))]
        picks = rng.integers(0, len(ids), size=(n_boot, len(ids)))
        return [np.concatenate([members[g] for g in row]) for row in picks]

    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    point, reps = {}, {}
    for name in names:
        m, b = _task_replicates(name, results["items"][name], baseline["items"][name], idx_fn)
        point[name] = float(results["tasks"][name]["main"]) / float(baseline["tasks"][name]["main"])
        reps[name] = m / b

    def summary(p: float, r: np.ndarray) -> dict[str, float]:
        r = r[np.isfinite(r)]
        return {"retention": p, "low": float(np.percentile(r, lo_q)), "high": float(np.percentile(r, hi_q))}

    out: dict[str, Any] = {"tasks": {n: summary(point[n], reps[n]) for n in names}, "categories": {},
                           "n_boot": n_boot, "level": level}
    for cat in CATEGORIES:
        members = [n for n in names if TASKS[n].category == cat]
        if members:
            out["categories"][cat] = summary(float(np.mean([point[n] for n in members])),
                                             np.mean([reps[n] for n in members], axis=0))
            out["categories"][cat]["tasks"] = members
    head = [c for c in HEADLINE_CATEGORIES if c in out["categories"]]
    if head:
        cat_reps = [np.mean([reps[n] for n in out["categories"][c]["tasks"]], axis=0) for c in head]
        out["headline"] = summary(float(np.mean([out["categories"][c]["retention"] for c in head])),
                                  np.mean(cat_reps, axis=0))
        out["headline"]["categories"] = head
    return out


def category_retention(results: Mapping, baseline: Mapping) -> dict[str, float]:
    """Mean retention per category (no intervals; works on results without items), lowest first.

    >>> r = {"tasks": {"polarity": {"main": 0.7}, "simlex999": {"main": 0.5}}}
    >>> b = {"tasks": {"polarity": {"main": 0.8}, "simlex999": {"main": 0.4}}}
    >>> {c: round(v, 3) for c, v in category_retention(r, b).items()}
    {'classification': 0.875, 'word similarity': 1.25}
    """
    per_cat: dict[str, list[float]] = {}
    for name, scores in results["tasks"].items():
        if name in TASKS and name in baseline["tasks"]:
            per_cat.setdefault(TASKS[name].category, []).append(
                float(scores["main"]) / float(baseline["tasks"][name]["main"]))
    return dict(sorted(((c, float(np.mean(v))) for c, v in per_cat.items()), key=lambda kv: kv[1]))


def headline_retention(results: Mapping, baseline: Mapping) -> float:
    """The headline without an interval (works on results without items): the mean retention of the
    sentence-level categories (``HEADLINE_CATEGORIES``), as ``bootstrap_retention(...)["headline"]``.

    >>> r = {"tasks": {"wordnet-retrieval": {"main": 0.3}, "polarity": {"main": 0.8}, "lee-sts": {"main": 0.5}}}
    >>> round(headline_retention(r, {"tasks": {t: {"main": 0.5} for t in r["tasks"]}}), 4)
    1.0667
    """
    cats = category_retention(results, baseline)
    head = [c for c in HEADLINE_CATEGORIES if c in cats]
    if not head:
        raise ValueError("no task of the headline categories in both results")
    return float(np.mean([cats[c] for c in head]))

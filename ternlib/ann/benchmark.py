"""The ANN benchmark: every index with every encoder on the WordNet retrieval set, quality and speed."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .encode import CACHE_DIR, Encoder, embed, load_encoder  # noqa: F401
from .index import DEFAULT_PRESETS, PRESETS, AnnError, AnnIndex, build_index, require_faiss  # noqa: F401

# ---------------------------------------------------------------------------------------------
# evaluation


def neighbour_recall(ids: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean over queries of |found top-k ∩ exact top-k| / k (the usual k-recall@k)."""
    ids, exact = np.asarray(ids)[:, :k], np.asarray(exact)[:, :k]
    if len(ids) != len(exact):
        raise AnnError(f"{len(ids)} result rows but {len(exact)} exact rows")
    hit = (ids[:, :, None] == exact[:, None, :]) & (ids[:, :, None] >= 0)  # (nq, k, k)
    return float(hit.any(2).sum(1).mean() / k)


def precision_at_k(ids: np.ndarray, relevant: Sequence[Sequence[int]], k: int = 10) -> float:
    """Mean over queries of (relevant documents in the top ``k``) / ``k``: the paper's precision@10.

    An unfilled slot (id -1) counts as a miss. With one relevant document a query (most of WordNet)
    precision@k is recall@k / k, so it is at most 1/k.

    >>> precision_at_k(np.array([[3, 1, -1], [0, 2, 5]]), [(1,), (7, 8)], k=3)
    0.16666666666666666
    """
    ids = np.asarray(ids)[:, :k]
    if len(ids) != len(relevant):
        raise AnnError(f"{len(ids)} result rows but {len(relevant)} relevance lists")
    if ids.shape[1] < k:
        raise AnnError(f"precision@{k} needs {k} result columns, got {ids.shape[1]}")
    hits = [sum(int(j) in rel for j in row if j >= 0) for row, rel in zip(ids, map(set, relevant))]
    return float(np.mean(hits) / k)


def task_metrics(ids: np.ndarray, relevant: Sequence[Sequence[int]], k: int = 10, chunk: int = 512) -> dict[str, float]:
    """nDCG@10, recall@1, recall@10, MRR@10 and precision@10 of ranked result ids (nq, >= k); all but
    precision (:func:`precision_at_k`) are computed by
    :func:`ternlib.evaluation.metrics.ranking_metrics` on a compact score matrix per chunk of
    queries: k placeholder columns (never relevant, they fill slots an index left empty), then
    every retrieved or relevant document of the chunk; retrieved documents score by rank."""
    from ..evaluation.metrics import ranking_metrics

    ids = np.asarray(ids)
    if len(ids) != len(relevant):
        raise AnnError(f"{len(ids)} result rows but {len(relevant)} relevance lists")
    parts: dict[str, list[np.ndarray]] = {}
    for s in range(0, len(ids), chunk):
        sub, rel = ids[s:s + chunk, :k], relevant[s:s + chunk]
        cols = np.unique(np.concatenate([sub[sub >= 0].ravel(), np.fromiter((j for r in rel for j in r), np.int64)]))
        scores = np.full((len(sub), k + len(cols)), -1.0, dtype=np.float32)
        scores[:, :k] = -0.5 - np.arange(k, dtype=np.float32) / (2 * k)  # placeholders, below every hit
        rows, ranks = np.nonzero(sub >= 0)
        scores[rows, k + np.searchsorted(cols, sub[rows, ranks])] = 2 * k - ranks
        mapped = [[k + int(np.searchsorted(cols, j)) for j in r] for r in rel]
        for name, v in ranking_metrics(scores, mapped, k=k, reduce=False).items():
            parts.setdefault(name, []).append(v)
    out = {name: float(np.concatenate(v).mean()) for name, v in parts.items()}
    out[f"precision@{k}"] = precision_at_k(ids, relevant, k)
    return out


def load_corpus(n_queries: int | None = None, n_docs: int | None = None, seed: int = 0):
    """The WordNet retrieval set (:func:`ternlib.data.text.wordnet_retrieval`): all 48,224
    queries against 117,659 documents, or a sample of ``n_queries`` with about ``n_docs`` documents
    (the relevant ones plus distractors, half of them other senses of the same words)."""
    from ..data.text import wordnet_retrieval

    if n_queries is None:
        return wordnet_retrieval()
    n_docs = 10 * n_queries if n_docs is None else n_docs
    return wordnet_retrieval(n_queries=n_queries, n_distractors=max(0, n_docs - n_queries), seed=seed)


def machine() -> dict[str, Any]:
    import torch

    faiss = require_faiss()
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "torch threads": torch.get_num_threads(), "faiss threads": faiss.omp_get_max_threads(),
            "faiss": faiss.__version__, "torch": torch.__version__, "python": platform.python_version()}


def batch1_qps(indexes: dict[str, AnnIndex], q: np.ndarray, k: int = 10, repeats: int = 5) -> dict[str, float]:
    """Queries per second of each index searched one query at a time over the rows of ``q``
    (n, d): medians of ``repeats`` rounds, the indexes interleaved within each round."""
    from ..bench import interleaved

    def one_by_one(index):
        return lambda: [index.search(q[i:i + 1], k) for i in range(len(q))]

    med = interleaved({name: one_by_one(ix) for name, ix in indexes.items()}, repeats=repeats, warmup=1)
    return {name: len(q) / t for name, t in med.items()}


def benchmark(encoders: dict[str, Encoder] | Sequence[Encoder], data=None, indexes: Iterable[str] = DEFAULT_PRESETS,
              k: int = 10, teacher: Encoder | None = None, cache_dir: str | os.PathLike | None = CACHE_DIR,
              batch1_queries: int = 50, latency_queries: int = 20, repeats: int = 5, latency_repeats: int = 30,
              batch_size: int = 64, progress: bool = True, keep: bool = False) -> dict[str, Any]:
    """Every index preset with every encoder on a retrieval set, as one JSON-able dict.

    ``data`` is a :class:`~ternlib.data.text.RetrievalData` (default: the full WordNet set).
    ``teacher`` (default: the encoder named FP32, else loaded) gives the exact neighbours every
    recall is also measured against, and its exact Flat search is the latency reference: the
    end-to-end batch-1 latency (encode one query + search) of every (encoder, index) pair is timed
    interleaved with it in one process (medians). ``keep=True`` returns the built indexes and
    embeddings too (under ``"_objects"``, not JSON-able).

    Result: ``{"machine", "corpus", "k", "encoders", "rows": [one per encoder x index], "latency"}``;
    each row has ``ndcg@10``, ``recall@10``, ``mrr@10`` (the task), ``recall@k vs exact`` (same
    encoder), ``recall@k vs FP32 exact`` (teacher), ``qps batch 1``, ``qps batched``, ``index bytes``,
    ``bytes per vector``, ``build s``, ``e2e ms``, ``e2e vs FP32+Flat``.
    """
    from ..bench import interleaved

    faiss = require_faiss()
    encs = dict(encoders) if isinstance(encoders, dict) else {e.name: e for e in encoders}
    if not encs:
        raise AnnError("no encoders given")
    names = list(dict.fromkeys(indexes))
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise AnnError(f"unknown index preset(s) {unknown}; known: {', '.join(PRESETS)}")
    if "Flat" not in names:
        names.insert(0, "Flat")  # exact search: the ground truth of every recall
    data = load_corpus() if data is None else data
    if teacher is None:
        teacher = next((e for e in encs.values() if e.key.startswith("fp32")), None) or load_encoder("fp32")
    all_encs = {**encs, **({} if any(e is teacher for e in encs.values()) else {"_teacher": teacher})}

    res: dict[str, Any] = {"machine": machine(), "k": k, "teacher": teacher.name,
                           "corpus": {"queries": len(data.queries), "documents": len(data.documents)},
                           "encoders": {}, "rows": []}
    emb, built, results = {}, {}, {}
    for en, enc in all_encs.items():
        t0 = time.perf_counter()
        docs = embed(enc, data.documents, cache_dir, batch_size, progress=progress, desc=f"{enc.name}: documents")
        qs = embed(enc, data.queries, cache_dir, batch_size, progress=progress, desc=f"{enc.name}: queries")
        emb[en] = (docs, qs)
        res["encoders"][enc.name] = {"key": enc.key, "dim": int(docs.shape[1]),
                                     "embed s (0 if cached)": round(time.perf_counter() - t0, 2)}
        names_here = ["Flat"] if en == "_teacher" else names
        for name in names_here:
            ix = build_index(docs, name)
            built[en, name] = ix
            t0 = time.perf_counter()
            results[en, name] = ix.search(qs, k)[1]  # (nq, k)
            res.setdefault("_batched", {})[en, name] = len(qs) / (time.perf_counter() - t0)
    teacher_en = next(en for en, e in all_encs.items() if e is teacher)
    exact_teacher = results[teacher_en, "Flat"]

    for en, enc in encs.items():
        q = emb[en][1][:batch1_queries]
        qps1 = batch1_qps({n: built[en, n] for n in names}, q, k, repeats)
        for name in names:
            ix, ids = built[en, name], results[en, name]
            row = {"encoder": enc.name, "index": name, "factory": ix.factory, "params": ix.search_params,
                   **task_metrics(ids, data.relevant, k=k),
                   "recall@k vs exact": neighbour_recall(ids, results[en, "Flat"], k),
                   "recall@k vs FP32 exact": neighbour_recall(ids, exact_teacher, k),
                   "qps batch 1": qps1[name], "qps batched": res["_batched"][en, name],
                   "index bytes": ix.nbytes, "bytes per vector": ix.nbytes / max(1, ix.ntotal),
                   "build s": ix.build_seconds}
            res["rows"].append(row)

    # end to end, batch 1: encode one query + search, every pair interleaved with FP32 + exact Flat
    texts = data.queries[:latency_queries]
    ref_key = (teacher_en, "Flat")
    pairs = {f"{all_encs[en].name} + {name}": (en, name) for en in encs for name in names}
    ref_label = f"{teacher.name} + Flat"
    pairs.setdefault(ref_label, ref_key)

    def e2e(en, name):
        enc, ix, it = all_encs[en], built[en, name], iter(range(10**9))

        def go():
            text = texts[next(it) % len(texts)]
            return ix.search(enc.encode([text], batch_size=1), k)
        return go

    from ..models import quiet_hf

    with quiet_hf():
        med = interleaved({label: e2e(*pair) for label, pair in pairs.items()}, repeats=latency_repeats, warmup=2)
    res["latency"] = {"reference": ref_label, "queries": len(texts), "repeats": latency_repeats,
                      "ms": {label: 1e3 * t for label, t in med.items()},
                      "ratio": {label: t / med[ref_label] for label, t in med.items()}}
    for row in res["rows"]:
        label = f"{row['encoder']} + {row['index']}"
        row["e2e ms"], row["e2e vs FP32+Flat"] = 1e3 * med[label], med[label] / med[ref_label]
    ref_ndcg = next(r["ndcg@10"] for r in res["rows"] if r["encoder"] == teacher.name and r["index"] == "Flat") \
        if teacher.name in {e.name for e in encs.values()} \
        else task_metrics(exact_teacher, data.relevant, k=k)["ndcg@10"]
    res["reference ndcg@10"] = ref_ndcg
    for row in res["rows"]:
        row["ndcg@10 vs FP32+Flat"] = row["ndcg@10"] / ref_ndcg
    res.pop("_batched")
    res["threads"] = {"faiss": faiss.omp_get_max_threads()}
    if keep:
        res["_objects"] = {"indexes": built, "embeddings": emb, "encoders": all_encs}
    return res


def save_results(res: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a :func:`benchmark` result as JSON (drops ``_objects``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in res.items() if not k.startswith("_")}, indent=2))
    return path


TABLE_COLUMNS = [("ndcg@10", "nDCG@10", "{:.3f}"), ("ndcg@10 vs FP32+Flat", "vs FP32+Flat", "{:.1%}"),
                 ("recall@k vs exact", "recall@k (same enc.)", "{:.3f}"),
                 ("recall@k vs FP32 exact", "recall@k (FP32 exact)", "{:.3f}"),
                 ("qps batch 1", "QPS b=1", "{:,.0f}"), ("qps batched", "QPS batched", "{:,.0f}"),
                 ("bytes per vector", "bytes/vec", "{:.1f}"), ("build s", "build s", "{:.2f}"),
                 ("e2e ms", "e2e ms b=1", "{:.2f}"), ("e2e vs FP32+Flat", "e2e vs FP32+Flat", "{:.2f}x")]


def table(res: dict[str, Any]) -> str:
    """The rows of a :func:`benchmark` result as a markdown table."""
    head = "| encoder | index | " + " | ".join(c[1] for c in TABLE_COLUMNS) + " |"
    lines = [head, "|---|---|" + "---:|" * len(TABLE_COLUMNS)]
    for r in res["rows"]:
        lines.append(f"| {r['encoder']} | {r['index']} | " + " | ".join(
            fmt.format(r[key]) if key in r else "-" for key, _, fmt in TABLE_COLUMNS) + " |")
    c = res["corpus"]
    ref = res["latency"]["reference"]
    lines += ["", f"{c['queries']:,} queries, {c['documents']:,} documents, k = {res['k']}; "
                  f"latency reference: {ref} ({res['latency']['ms'][ref]:.2f} ms)"]
    return "\n".join(lines)

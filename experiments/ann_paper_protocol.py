"""The paper's ANN protocol beside the book's, on the full WordNet retrieval set (48,224 queries,
117,659 documents), for the FP32 encoder and the ternary student.

The paper (arXiv:2411.15438) built four FAISS indexes with their constructors' defaults,
``IndexFlatL2``, ``IndexIVFFlat(nlist=100)``, ``IndexLSH(128 bits)`` and ``IndexHNSWFlat(M=32)``,
and measured precision@10, build time and query time. This script builds exactly those (L2 metric;
on unit-norm embeddings L2 ranks like the cosine) next to chapter 6's presets (``ternlib.ann``,
inner product, sized to the data, plus the ``LSH`` preset, the same ``IndexLSH``) and measures
for every (encoder, index): precision@10 and nDCG@10 / recall@10 / MRR@10 against WordNet's
relevance, recall@10 against exact search with the same encoder and with the FP32 encoder, build
seconds, query seconds for all queries in one batched call, and serialized bytes per vector. Times
are wall-clock and CPU seconds (the process's, all threads together: on a shared machine the CPU
seconds measure the work, which wall-clock seconds under load do not).

    python experiments/ann_paper_protocol.py --queries 10000 --out book/artifacts/ann/paper_protocol.json  # ~35 min
    python experiments/ann_paper_protocol.py --out runs/paper_protocol_all_queries.json       # all 48,224 queries
    python experiments/ann_paper_protocol.py --sample 200 --out runs/paper_protocol_quick.json  # ~1 min

Embeddings come from the cache `python -m ternlib ann` fills ($TERNLIB_CACHE, default
~/.cache/ternlib/ann): with the documents cached, a run only encodes what is missing (the queries,
once) and searches.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ternlib import ann

DEFAULT_MODEL = "book/artifacts/text/large_batch/model"
K = 10

#: The paper's four indexes: FAISS constructors with their default build and search parameters.
PAPER_INDEXES: dict[str, str] = {
    "IndexFlatL2": "exact L2 search",
    "IndexIVFFlat(nlist=100)": "100 k-means cells (L2 quantizer), nprobe = 1 (FAISS's default)",
    "IndexLSH(128 bits)": "random rotation to 128 directions, sign bits, Hamming search",
    "IndexHNSWFlat(M=32)": "HNSW, R = M = 32: 64 links a node on the bottom layer, 32 above; "
                           "efConstruction 40, efSearch 16 (FAISS's defaults)",
}


def paper_index(name: str, d: int) -> Any:
    """An empty FAISS index as the paper built it (``name`` a key of :data:`PAPER_INDEXES`)."""
    faiss = ann.require_faiss()
    if name == "IndexFlatL2":
        return faiss.IndexFlatL2(d)
    if name == "IndexIVFFlat(nlist=100)":
        return faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, 100)  # the wrapper keeps the quantizer alive
    if name == "IndexLSH(128 bits)":
        return faiss.IndexLSH(d, 128)
    if name == "IndexHNSWFlat(M=32)":
        return faiss.IndexHNSWFlat(d, 32)
    raise KeyError(f"unknown paper index {name!r}; known: {', '.join(PAPER_INDEXES)}")


def paper_params(index: Any) -> str:
    """The search-time parameters the paper's index runs with (FAISS's defaults)."""
    faiss = ann.require_faiss()
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIVF):
        return f"nprobe={inner.nprobe}"
    if isinstance(inner, faiss.IndexHNSW):
        return f"efConstruction={inner.hnsw.efConstruction},efSearch={inner.hnsw.efSearch}"
    if isinstance(inner, faiss.IndexLSH):
        return f"nbits={inner.nbits},rotate_data={bool(inner.rotate_data)}"
    return ""


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall-clock seconds and the CPU seconds of this process (all threads) it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="ternary checkpoint (default: %(default)s)")
    p.add_argument("--sample", type=int, default=None, help="queries in a sampled corpus (default: the full set)")
    p.add_argument("--queries", type=int, default=None,
                   help="search with a seeded sample of this many queries against all the documents (default: all)")
    p.add_argument("--threads", type=int, default=2, help="FAISS threads (default: %(default)s)")
    p.add_argument("--encode-threads", type=int, default=2, help="torch threads for encoding what is not cached")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import faiss
    import torch

    torch.set_num_threads(args.encode_threads)
    faiss.omp_set_num_threads(args.threads)
    data = ann.load_corpus(n_queries=args.sample)
    all_queries = len(data.queries)
    if args.queries is not None and args.queries < all_queries:  # the documents stay whole (and cached)
        keep = np.sort(np.random.default_rng(0).choice(all_queries, args.queries, replace=False))
        data = type(data)([data.queries[i] for i in keep], data.documents, [data.relevant[i] for i in keep],
                          data.doc_ids)
    encs = {"FP32": ann.load_encoder("fp32"), "ternary": ann.load_encoder(args.model)}
    cache = None if args.no_cache else ann.CACHE_DIR
    emb = {name: (ann.embed(e, data.documents, cache, desc=f"{name}: documents"),
                  ann.embed(e, data.queries, cache, desc=f"{name}: queries"))
           for name, e in encs.items()}
    nq = len(data.queries)
    faiss.omp_set_num_threads(args.threads)  # again: torch's thread setting is OpenMP's too, and FAISS shares it

    exact = {name: ann.build_index(docs, "Flat").search(qs, K)[1] for name, (docs, qs) in emb.items()}
    out: dict[str, Any] = {
        "command": "python experiments/ann_paper_protocol.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": args.model, "machine": ann.machine(), "k": K,
        "corpus": {"queries": nq, "queries in the set": all_queries, "documents": len(data.documents),
                   "relevant per query": {str(n): int(c) for n, c in
                                          zip(*np.unique([len(r) for r in data.relevant], return_counts=True))}},
        "paper indexes": PAPER_INDEXES,
        "book indexes": {name: p.description for name, p in ann.PRESETS.items()},
        "rows": []}

    def row(protocol: str, enc: str, name: str, factory: str, params: str, ids: np.ndarray,
            build: tuple[float, float], query: tuple[float, float], nbytes: int, ntotal: int) -> None:
        (build_s, build_cpu), (query_s, query_cpu) = build, query
        r = {"protocol": protocol, "encoder": enc, "index": name, "factory": factory, "params": params,
             **ann.task_metrics(ids, data.relevant, k=K),
             "recall@10 vs exact": ann.neighbour_recall(ids, exact[enc], K),
             "recall@10 vs FP32 exact": ann.neighbour_recall(ids, exact["FP32"], K),
             "build s": build_s, "build cpu s": build_cpu, "query s": query_s, "query cpu s": query_cpu,
             "query ms per query": 1e3 * query_s / nq, "query cpu ms per query": 1e3 * query_cpu / nq,
             "qps batched": nq / query_s, "index bytes": nbytes, "bytes per vector": nbytes / max(1, ntotal)}
        out["rows"].append(r)
        print(f"{protocol:5s} {enc:8s} {name:24s} P@10 {r['precision@10']:.4f}  nDCG@10 {r['ndcg@10']:.4f}  "
              f"recall vs exact {r['recall@10 vs exact']:.3f}  build {build_cpu:6.1f} s  query {query_cpu:6.1f} CPU s",
              flush=True)

    for enc, (docs, qs) in emb.items():
        # the paper's protocol: FAISS constructors, L2 metric, default parameters
        for name in PAPER_INDEXES:
            def build(name=name, docs=docs):
                index = paper_index(name, docs.shape[1])
                if not index.is_trained:
                    index.train(docs)
                index.add(docs)
                return index
            index, *build_t = timed(build)
            (_, ids), *query_t = timed(lambda index=index, qs=qs: index.search(qs, K))
            row("paper", enc, name, type(faiss.downcast_index(index)).__name__, paper_params(index), ids,
                build_t, query_t, faiss.serialize_index(index).nbytes, index.ntotal)
            del index
        # the book's presets (chapter 6), and LSH through ternlib.ann
        for name in ann.PRESETS:
            ix, *build_t = timed(lambda name=name, docs=docs: ann.build_index(docs, name))
            (_, ids), *query_t = timed(lambda ix=ix, qs=qs: ix.search(qs, K))
            row("book", enc, name, ix.factory, ix.search_params, ids, build_t, query_t, ix.nbytes, ix.ntotal)
            del ix

    ref = next(r["ndcg@10"] for r in out["rows"] if r["protocol"] == "book" and r["encoder"] == "FP32"
               and r["index"] == "Flat")
    out["reference"] = {"setting": "FP32 encoder + Flat (exact, inner product)", "ndcg@10": ref}
    for r in out["rows"]:
        r["ndcg@10 vs FP32+Flat"] = r["ndcg@10"] / ref
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

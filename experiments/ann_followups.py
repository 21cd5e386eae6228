"""Follow-up measurements behind chapter 6, on the full WordNet retrieval set (48,224 queries,
117,659 documents): HNSW's efSearch against the gap to exact search, which queries HNSW misses,
and search with every pair of encoders for documents and queries (mixed pairs: no re-indexing).

    python experiments/ann_followups.py --out book/artifacts/ann/followups.json            # ~20 min, 2 cores
    python experiments/ann_followups.py --sample 300 --out runs/followups_quick.json       # ~1 min

Embeddings are cached like `python -m ternlib ann` caches them ($TERNLIB_CACHE, default
~/.cache/ternlib/ann), so a run after `ann` on the same corpus only searches. Every nDCG@10 is
also given as a ratio to the FP32 encoder with exact (Flat) search, chapter 6's reference.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ternlib import ann

DEFAULT_MODEL = "book/artifacts/text/large_batch/model"
EF_SEARCH = (16, 32, 64, 128, 256, 512)


def top1_misses(ids: np.ndarray, exact: np.ndarray, relevant) -> dict[str, float]:
    """Share of queries whose exact top-1 an index does not return first: over all queries, and
    over the queries whose exact top-1 is a relevant document (the ones that carry the nDCG)."""
    miss = ids[:, 0] != exact[:, 0]
    hit = np.array([int(exact[i, 0]) in set(r) for i, r in enumerate(relevant)])
    return {"all queries": float(miss.mean()), "queries whose exact top-1 is relevant": float(miss[hit].mean()),
            "queries whose exact top-1 is relevant (count)": int(hit.sum())}


def targets(res: dict[str, Any], encoder: str = "ternary", index: str = "HNSW") -> list[dict[str, Any]]:
    """Chapter 6's two bars for ``encoder`` + ``index``: nDCG@10 >= 97% of FP32 + exact search,
    end-to-end batch-1 latency <= 0.5x, both read off one :func:`benchmark` run."""
    row = next((r for r in res["rows"] if r["encoder"] == encoder and r["index"] == index), None)
    if row is None:
        return []
    return [{"target": f"{encoder} + {index}: nDCG@10 >= 97% of FP32 + Flat",
             "measured": f"{row['ndcg@10']:.4f} vs {res['reference ndcg@10']:.4f} ({row['ndcg@10 vs FP32+Flat']:.1%})",
             "met": bool(row["ndcg@10 vs FP32+Flat"] >= 0.97)},
            {"target": f"{encoder} + {index}: end-to-end latency (batch 1) <= 0.5x FP32 + Flat",
             "measured": f"{row['e2e ms']:.2f} vs {res['latency']['ms'][res['latency']['reference']]:.2f} ms "
                         f"({row['e2e vs FP32+Flat']:.2f}x)",
             "met": bool(row["e2e vs FP32+Flat"] <= 0.5)}]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="ternary checkpoint (default: %(default)s)")
    p.add_argument("--sample", type=int, default=None, help="queries in a sampled corpus (default: the full set)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--qps-queries", type=int, default=200, help="queries timed one at a time per setting")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    data = ann.load_corpus(n_queries=args.sample)
    k = 10
    encs = {"FP32": ann.load_encoder("fp32"), "ternary": ann.load_encoder(args.model)}
    cache = None if args.no_cache else ann.CACHE_DIR
    emb = {name: (ann.embed(e, data.documents, cache, desc=f"{name}: documents"),
                  ann.embed(e, data.queries, cache, desc=f"{name}: queries"))
           for name, e in encs.items()}

    def ndcg(ids):
        return ann.task_metrics(ids, data.relevant, k=k)["ndcg@10"]

    flat = {name: ann.build_index(docs, "Flat") for name, (docs, _) in emb.items()}
    exact = {name: flat[name].search(emb[name][1], k)[1] for name in emb}
    own = {name: ndcg(ids) for name, ids in exact.items()}  # each encoder with exact search
    ref = own["FP32"]
    out = {"command": "python experiments/ann_followups.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "model": args.model, "machine": ann.machine(),
           "corpus": {"queries": len(data.queries), "documents": len(data.documents)},
           "reference": {"setting": "FP32 encoder + Flat (exact)", "ndcg@10": ref},
           "exact": {name: {"ndcg@10": v, "ndcg@10 vs FP32+Flat": v / ref} for name, v in own.items()},
           "efsearch": [], "top1 misses at efSearch 64": {}, "encoder pairs": []}

    # 1. HNSW: efSearch against the gap to exact search, each encoder on its own documents
    hnsw = {}
    for name, (docs, qs) in emb.items():
        hnsw[name] = ix = ann.build_index(docs, "HNSW")
        for ef in EF_SEARCH:
            ix.set_search_params(f"efSearch={ef}")
            ids = ix.search(qs, k)[1]
            n = ndcg(ids)
            out["efsearch"].append({
                "encoder": name, "efSearch": ef, "recall@10 vs own exact": ann.neighbour_recall(ids, exact[name], k),
                "ndcg@10": n, "ndcg@10 vs own exact": n / own[name], "ndcg@10 vs FP32+Flat": n / ref,
                "qps batch 1": ann.batch1_qps({"HNSW": ix}, qs[:args.qps_queries], k, repeats=3)["HNSW"]})
            if ef == 64:
                out["top1 misses at efSearch 64"][name] = top1_misses(ids, exact[name], data.relevant)
        ix.set_search_params(ann.PRESETS["HNSW"].search_params)  # back to the preset for the pairs below
        print(f"{name}: " + ", ".join(f"ef {r['efSearch']}: {r['ndcg@10 vs FP32+Flat']:.3f}"
                                      for r in out["efsearch"] if r["encoder"] == name), flush=True)

    # 2. every (documents, queries) pair of encoders: documents are embedded once, offline; a mixed
    #    pair would let a system switch the query encoder without re-indexing
    for doc_enc in emb:
        for q_enc in emb:
            qs = emb[q_enc][1]
            for index_name, ix in (("Flat", flat[doc_enc]), ("HNSW", hnsw[doc_enc])):
                ids = ix.search(qs, k)[1]
                n = ndcg(ids)
                out["encoder pairs"].append({"documents": doc_enc, "queries": q_enc, "index": index_name,
                                             "params": ix.search_params, "ndcg@10": n, "ndcg@10 vs FP32+Flat": n / ref,
                                             "recall@10 vs FP32 exact": ann.neighbour_recall(ids, exact["FP32"], k)})
    for r in out["encoder pairs"]:
        print(f"documents {r['documents']}, queries {r['queries']}, {r['index']}: nDCG@10 {r['ndcg@10']:.4f} "
              f"({r['ndcg@10 vs FP32+Flat']:.3f} of FP32+Flat)")
    print(json.dumps(out["top1 misses at efSearch 64"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

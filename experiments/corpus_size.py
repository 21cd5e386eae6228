"""Retrieval retention against corpus size: the same 4,000 WordNet queries searched in corpora of 1.5k to
117k synsets, FP32 teacher against a ternary checkpoint, with paired bootstrap intervals over queries.

The corpora are the evaluation suite's own samples (``wordnet_retrieval(n_queries=4000, n_distractors=n,
seed=0)``: the queries' synsets, half the distractors other senses of their lemmas, half random) and the
whole of WordNet. Document embeddings come from the ANN cache of chapter 6 (``ternlib.ann.encode.embed``,
encoded once per encoder; the ternary encoder runs with int8 activations, as search serves it), so the
corpora only select rows.

Usage (about 5 minutes with the embeddings cached by ``python -m ternlib ann``, an hour without):
    python experiments/corpus_size.py --model book/artifacts/text/large_batch/model \
        --out book/artifacts/text/corpus_size.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DISTRACTORS = (1500, 4000, 16000, 50000)  # plus the whole corpus
N_QUERIES = 4000  # the book preset's (ternlib.evaluation.BOOK_SIZES)


def per_query_ndcg(q: np.ndarray, d: np.ndarray, relevant: list, chunk: int = 256) -> np.ndarray:
    """nDCG@10 of every query (rows of q) against documents d, cosine (unit-norm rows)."""
    from ternlib.evaluation.metrics import ranking_metrics

    parts = [ranking_metrics(q[i:i + chunk] @ d.T, relevant[i:i + chunk], reduce=False)["ndcg@10"]
             for i in range(0, len(q), chunk)]
    return np.concatenate(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="book/artifacts/text/large_batch/model", help="ternary checkpoint")
    p.add_argument("--out", default="book/artifacts/text/corpus_size.json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-boot", type=int, default=2000)
    args = p.parse_args(argv)

    import torch

    from ternlib.ann.encode import embed, load_encoder
    from ternlib.data import text as D
    from ternlib.evaluation import bootstrap_retention

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    full = D.wordnet_retrieval()
    relevant_of = dict(zip(full.queries, full.relevant))
    row_of = {doc_id: k for k, doc_id in enumerate(full.doc_ids)}
    sample = D.wordnet_retrieval(n_queries=N_QUERIES, n_distractors=0, seed=0)
    queries = sample.queries  # the same 4,000 queries for every corpus size
    encoders = {"FP32": load_encoder("fp32"), "ternary": load_encoder(args.model, activations="int8")}
    emb = {name: (embed(enc, queries, progress=False), embed(enc, full.documents, desc=f"corpus ({name})"))
           for name, enc in encoders.items()}

    rows = []
    for n in (*DISTRACTORS, None):
        if n is None:
            docs = np.arange(len(full.documents))
            relevant = [relevant_of[q] for q in queries]
        else:
            data = D.wordnet_retrieval(n_queries=N_QUERIES, n_distractors=n, seed=0)
            assert data.queries == queries
            docs = np.array([row_of[i] for i in data.doc_ids])
            relevant = data.relevant
        per = {name: per_query_ndcg(q, d[docs], relevant) for name, (q, d) in emb.items()}
        results = {name: {"tasks": {"wordnet-retrieval": {"main": float(v.mean())}},
                          "items": {"wordnet-retrieval": {"ndcg@10": v.tolist()}}} for name, v in per.items()}
        ci = bootstrap_retention(results["ternary"], results["FP32"], n_boot=args.n_boot)["tasks"]["wordnet-retrieval"]
        rows.append({"documents": int(len(docs)), "distractors": n, "ndcg@10 FP32": float(per["FP32"].mean()),
                     "ndcg@10 ternary": float(per["ternary"].mean()), **ci})
        print(f"{len(docs):>7,} documents: FP32 {rows[-1]['ndcg@10 FP32']:.4f}, ternary "
              f"{rows[-1]['ndcg@10 ternary']:.4f}, retention {ci['retention']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]")
    out = {"queries": len(queries), "model": args.model, "ternary activations": "int8",
           "encoders": {k: v.key for k, v in encoders.items()}, "rows": rows,
           "seconds": round(time.perf_counter() - t0, 1),
           "command": "python experiments/corpus_size.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

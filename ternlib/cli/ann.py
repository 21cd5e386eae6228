"""``ternlib ann``: FAISS indexes on FP32 and ternary embeddings of the WordNet corpus, compared."""
from __future__ import annotations

import argparse

from .options import add_threads

NAME = "ann"
INDEXES = ["Flat", "IVF-Flat", "HNSW", "IVF-PQ+refine", "SQ8", "Binary+rescore", "Binary+float-rescore"]


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        NAME,
        help="encode the WordNet corpus, build FAISS indexes (Flat, IVF, HNSW, PQ, binary) and compare them",
        description="Approximate nearest-neighbour search on FP32 and ternary embeddings. Encodes the "
        "WordNet retrieval corpus (117,659 synset definitions; 48,224 example sentences as queries) with "
        "each encoder (embeddings are cached under ~/.cache/ternlib/ann, so the second run is fast), "
        "builds each FAISS index, and prints one row per encoder and index: nDCG@10 on the task, "
        "recall@k against exact search (same encoder, and the FP32 model's exact neighbours), queries "
        "per second (one at a time and batched), bytes per vector, build time, and the end-to-end "
        "latency of one query (encode + search) against FP32 + exact search, timed side by side. "
        "Needs faiss-cpu (pip install faiss-cpu). "
        "Example: ternlib ann --encoder fp32 runs/best/model --sample 200",
    )
    p.add_argument("--encoder", nargs="+", default=["fp32"], metavar="fp32|PATH",
                   help="encoders to compare: 'fp32' (all-MiniLM-L6-v2) or a ternlib checkpoint directory "
                   "(loaded with int8 activations, the fast CPU kernels); default: fp32")
    p.add_argument("--indexes", nargs="+", default=INDEXES, metavar="NAME",
                   help=f"index presets (default: all): {' '.join(INDEXES)}; Flat (exact) is always added as the "
                   "ground truth")
    p.add_argument("--sample", type=int, help="use only this many queries (seeded sample) and about 10x as many "
                   "documents (the full set is slow: ~20 min of encoding on 2 CPU cores, once)")
    p.add_argument("--docs", type=int, help="with --sample: about this many documents")
    p.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--cache-dir", default=None, help="embedding cache (default ~/.cache/ternlib/ann)")
    p.add_argument("--no-cache", action="store_true", help="encode again, do not read or write the cache")
    add_threads(p, "torch and FAISS")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from .. import ann

    unknown = [n for n in args.indexes if n not in ann.PRESETS]
    if unknown:
        raise SystemExit(f"--indexes: unknown {', '.join(unknown)}; choose from {', '.join(ann.PRESETS)}")
    try:
        import faiss
    except ImportError:
        raise SystemExit(f"ternlib ann needs FAISS: {ann.FAISS_INSTALL}") from None
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    cache_dir = ann.CACHE_DIR if args.cache_dir is None else args.cache_dir
    data = ann.load_corpus(args.sample, args.docs, seed=args.seed) if args.sample else ann.load_corpus()
    encoders = [ann.load_encoder(spec) for spec in args.encoder]
    teacher = None if any(e.key.startswith("fp32") for e in encoders) else ann.load_encoder("fp32")
    res = ann.benchmark(encoders, data, indexes=args.indexes, k=args.k, teacher=teacher,
                        cache_dir=None if args.no_cache else cache_dir, progress=not args.quiet)
    res["command"] = "python -m ternlib ann " + " ".join(args.argv)
    print(ann.table(res))
    if args.out:
        ann.save_results(res, args.out)
        print(f"\nwrote {args.out}")
    return 0

"""Approximate nearest-neighbour (ANN) search on FP32 and ternary embeddings, with FAISS.

This package holds what chapter 6 measures and ``python -m ternlib ann`` runs:

- :data:`PRESETS`, the named index families: ``Flat`` (exact), ``IVF-Flat``, ``HNSW``,
  ``IVF-PQ+refine`` (IVF with product-quantized codes, the top candidates re-ranked with the exact
  vectors by ``IndexRefineFlat``), ``SQ8`` (8-bit scalar quantization), ``Binary+rescore`` (the
  sign bit of each dimension, Hamming search, the candidates re-scored with the float query
  against the ±1 codes: only the bits are stored), ``Binary+float-rescore`` (the same, re-scored
  with the stored float vectors) and ``LSH``, the paper's ``IndexLSH(d, 128)`` (a random rotation to
  128 directions, their sign bits, Hamming search), which :data:`DEFAULT_PRESETS` (the presets of
  the stored benchmark run) leaves out;
- :func:`build_index` (a preset name or any FAISS factory string), :class:`AnnIndex` with
  ``search``, ``save`` and :func:`load_index` (FAISS's own ``write_index`` / ``read_index`` and their
  binary variants), and the guard rails: dimension mismatches, empty or untrained indexes, ``k``
  larger than the index and non-normalized inputs raise :class:`AnnError` (a ``ValueError``) that
  says what to do;
- :func:`load_encoder` (``"fp32"`` or a ternlib checkpoint) and :func:`embed` (encode a corpus once
  per encoder, cached as ``.npy`` under ``~/.cache/ternlib/ann``);
- :func:`benchmark`: every index with every encoder on the WordNet retrieval set: recall@k against
  exact search with the same encoder and with the FP32 teacher, nDCG@10 / recall@10 / MRR@10 /
  precision@10 (:func:`precision_at_k`),
  queries per second at batch 1 and batched, serialized index bytes, build seconds and end-to-end
  batch-1 latency (encode one query + search) timed interleaved against FP32 + exact search;
  :func:`table` prints it as markdown.

All search is inner product on unit-norm vectors, i.e. cosine similarity. Scores are returned
higher-is-better; a slot an approximate index could not fill has id ``-1`` and score ``-inf``.

Example:
    >>> import numpy as np
    >>> from ternlib.ann import build_index, normalize
    >>> x = normalize(np.random.default_rng(0).standard_normal((1000, 32)))   # (n, d) unit rows
    >>> index = build_index(x, "HNSW")
    >>> scores, ids = index.search(x[:3], k=5)                                  # (3, 5) each
    >>> ids[:, 0].tolist()                                                      # each row finds itself
    [0, 1, 2]
    >>> build_index(x, "Binary+rescore").nbytes < build_index(x, "Flat").nbytes / 20
    True
"""
from .benchmark import (
    TABLE_COLUMNS,
    batch1_qps,
    benchmark,
    load_corpus,
    machine,
    neighbour_recall,
    precision_at_k,
    save_results,
    table,
    task_metrics,
)
from .encode import CACHE_DIR, Encoder, corpus_hash, embed, load_encoder
from .index import (
    DEFAULT_PRESETS,
    FAISS_INSTALL,
    NORM_TOLERANCE,
    PRESETS,
    AnnError,
    AnnIndex,
    Preset,
    build_index,
    ivf_sizes,
    load_index,
    normalize,
    require_faiss,
    sign_bits,
)

__all__ = ["CACHE_DIR", "DEFAULT_PRESETS", "FAISS_INSTALL", "NORM_TOLERANCE", "PRESETS", "TABLE_COLUMNS", "AnnError",
           "AnnIndex", "Encoder", "Preset", "batch1_qps", "benchmark", "build_index", "corpus_hash", "embed",
           "ivf_sizes", "load_corpus", "load_encoder", "load_index", "machine", "neighbour_recall", "normalize",
           "precision_at_k", "require_faiss", "save_results", "sign_bits", "table", "task_metrics"]

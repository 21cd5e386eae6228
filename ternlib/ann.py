"""Approximate nearest-neighbour (ANN) search on FP32 and ternary embeddings, with FAISS.

This module holds what chapter 6 measures and ``python -m ternlib ann`` runs:

- :data:`PRESETS`, the named index families: ``Flat`` (exact), ``IVF-Flat``, ``HNSW``,
  ``IVF-PQ+refine`` (IVF with product-quantized codes, the top candidates re-ranked with the exact
  vectors by ``IndexRefineFlat``), ``SQ8`` (8-bit scalar quantization), ``Binary+rescore`` (the
  sign bit of each dimension, Hamming search, the candidates re-scored with the float query
  against the ±1 codes: only the bits are stored) and ``Binary+float-rescore`` (the same, re-scored
  with the stored float vectors);
- :func:`build_index` (a preset name or any FAISS factory string), :class:`AnnIndex` with
  ``search``, ``save`` and :func:`load_index` (FAISS's own ``write_index`` / ``read_index`` and their
  binary variants), and the guard rails: dimension mismatches, empty or untrained indexes, ``k``
  larger than the index and non-normalized inputs raise :class:`AnnError` (a ``ValueError``) that
  says what to do;
- :func:`load_encoder` (``"fp32"`` or a ternlib checkpoint) and :func:`embed` (encode a corpus once
  per encoder, cached as ``.npy`` under ``~/.cache/ternlib/ann``);
- :func:`benchmark`: every index with every encoder on the WordNet retrieval set: recall@k against
  exact search with the same encoder and with the FP32 teacher, nDCG@10 / recall@10 / MRR@10,
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
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

FAISS_INSTALL = "pip install faiss-cpu  (or faiss-gpu on a CUDA machine)"
NORM_TOLERANCE = 1e-3  # |norm - 1| allowed for inner-product (cosine) search
CACHE_DIR = Path(os.environ.get("TERNLIB_CACHE", Path.home() / ".cache" / "ternlib")) / "ann"


class AnnError(ValueError):
    """A wrong use of an ANN index (shapes, empty or untrained index, k, normalization)."""


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError(f"ternlib.ann needs FAISS: {FAISS_INSTALL}") from None
    return faiss


# ---------------------------------------------------------------------------------------------
# presets


@dataclass(frozen=True)
class Preset:
    """A named index: a FAISS factory string (with ``{nlist}``, ``{pq_m}``, ``{pq_nbits}`` filled
    in from the data size), search parameters (a ``faiss.ParameterSpace`` string), build
    parameters, and for binary indexes the re-scoring mode."""

    name: str
    factory: str
    search_params: str = ""
    description: str = ""
    binary: bool = False
    rescore: str = ""  # binary only: "codes" (float query vs the +-1 codes) or "float" (stored floats)
    rescore_factor: int = 10  # binary only: Hamming candidates = rescore_factor * k
    ef_construction: int = 0  # HNSW only: graph build quality (0: FAISS default, 40)


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("Flat", "Flat", "", "exact search: every query against every vector (the ground truth)"),
    Preset("IVF-Flat", "IVF{nlist},Flat", "nprobe={nprobe}",
           "k-means cells; a query scans the vectors of its nprobe nearest cells"),
    Preset("HNSW", "HNSW32", "efSearch=64", "navigable small-world graph, 32 links per node",
           ef_construction=80),
    Preset("IVF-PQ+refine", "IVF{nlist},PQ{pq_m}x{pq_nbits},RFlat", "nprobe={nprobe},k_factor_rf=10",
           "IVF with product-quantized codes (d/8 bytes a vector); the 10k best re-ranked exactly"),
    Preset("SQ8", "SQ8", "", "every dimension as one byte (scalar quantization), exhaustive search"),
    Preset("Binary+rescore", "BFlat", "", "1 sign bit per dimension, Hamming search, the 10k best "
           "re-scored with the float query against the bits (only bits stored)", binary=True, rescore="codes"),
    Preset("Binary+float-rescore", "BFlat", "", "1 sign bit per dimension, Hamming search, the 10k best "
           "re-scored with the stored float vectors", binary=True, rescore="float"),
]}
DEFAULT_PRESETS = tuple(PRESETS)


def ivf_sizes(n: int, d: int) -> dict[str, int]:
    """Data-dependent sizes: ``nlist`` (about 4 sqrt(n) cells, at least 39 training points a
    cell as FAISS asks), ``nprobe``, and the PQ code shape (d/8 sub-quantizers of up to 8 bits, fewer
    bits on small data so every codebook has 39 points a centroid)."""
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    pq_m = next(m for m in (d // 8, d // 4, d // 2, d, 1) if m >= 1 and d % m == 0)
    pq_nbits = int(max(1, min(8, math.floor(math.log2(max(2, n // 39))))))
    return {"nlist": nlist, "nprobe": max(1, min(nlist, 32)), "pq_m": pq_m, "pq_nbits": pq_nbits}


# ---------------------------------------------------------------------------------------------
# input checks


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows raise :class:`AnnError`)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if (norms == 0).any():
        raise AnnError("cannot normalize a zero vector")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


_unit = normalize  # methods take a ``normalize`` flag that shadows the function


def _check_vectors(x: Any, d: int | None, what: str, normalized: bool = True) -> np.ndarray:
    """(n, d) float32 C-contiguous copy of ``x``; errors on wrong rank, width, nan or norm."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise AnnError(f"{what} must be a 2-d array (n, d), got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise AnnError(f"{what} must be numeric, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if d is not None and x.shape[1] != d:
        raise AnnError(f"dimension mismatch: the index holds d={d} vectors, {what} have d={x.shape[1]}")
    if len(x) and not np.isfinite(x).all():
        raise AnnError(f"{what} contain nan or inf")
    if normalized and len(x):
        norms = np.linalg.norm(x, axis=1)
        bad = np.abs(norms - 1) > NORM_TOLERANCE
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AnnError(f"inner-product (cosine) search needs unit-norm {what}: row {i} has norm "
                           f"{norms[i]:.4g} ({int(bad.sum())} of {len(x)} rows off by more than "
                           f"{NORM_TOLERANCE}); pass normalize=True or use ternlib.ann.normalize")
    return x


# ---------------------------------------------------------------------------------------------
# the index


@dataclass
class AnnIndex:
    """A FAISS index over unit-norm vectors, searched by inner product (cosine similarity).

    ``index`` is a ``faiss.Index`` (float) or ``faiss.IndexBinary`` (sign bits; then ``rescore``
    says how candidates are re-scored and ``vectors`` holds the floats for ``rescore="float"``).
    Build one with :func:`build_index`; reload a saved one with :func:`load_index`.
    """

    index: Any
    name: str
    factory: str
    d: int
    search_params: str = ""
    rescore: str = ""
    rescore_factor: int = 10
    vectors: np.ndarray | None = None  # (n, d) float32, binary + float re-scoring only
    build_seconds: float = 0.0
    _codes: np.ndarray | None = field(default=None, repr=False)  # (n, d/8) uint8 cache of the bits

    @property
    def binary(self) -> bool:
        return bool(self.rescore)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def nbytes(self) -> int:
        """Memory of the index as FAISS serializes it (plus the float vectors kept for re-scoring)."""
        faiss = _faiss()
        n = (faiss.serialize_index_binary(self.index) if self.binary else faiss.serialize_index(self.index)).nbytes
        return int(n + (self.vectors.nbytes if self.vectors is not None else 0))

    def _binary_codes(self) -> np.ndarray:
        if self._codes is None or len(self._codes) != self.ntotal:
            faiss = _faiss()
            flat = faiss.downcast_IndexBinary(self.index)
            storage = flat.storage if hasattr(flat, "storage") else flat
            self._codes = faiss.vector_to_array(faiss.downcast_IndexBinary(storage).xb).reshape(self.ntotal, -1)
        return self._codes

    def add(self, x: np.ndarray, normalize: bool = False) -> "AnnIndex":
        """Add vectors (n, d); the index must be trained (build_index trains it)."""
        x = _check_vectors(_unit(x) if normalize else x, self.d, "vectors")
        if not self.index.is_trained:
            raise AnnError(f"the {self.name} index is not trained: train it on representative vectors "
                           f"first (build_index does), then add")
        if self.binary:
            self.index.add(sign_bits(x))
            self._codes = None
            if self.rescore == "float":
                self.vectors = x if self.vectors is None else np.concatenate([self.vectors, x])
        else:
            self.index.add(x)
        return self

    def search(self, queries: np.ndarray, k: int = 10, normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best vectors of each query: ``(scores, ids)``, each (nq, k), best first.

        Queries must be unit-norm (or pass ``normalize=True``). ``k`` may not exceed the number of
        vectors in the index. An approximate index may leave slots unfilled (e.g. IVF with too
        few probed cells): those have id -1 and score -inf.
        """
        q = _check_vectors(_unit(queries) if normalize else queries, self.d, "queries")
        if self.ntotal == 0:
            raise AnnError(f"the {self.name} index is empty: add vectors before searching")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise AnnError(f"k must be a positive int, got {k!r}")
        if k > self.ntotal:
            raise AnnError(f"k={k} is larger than the {self.ntotal} vectors in the index; pass k <= {self.ntotal}")
        if self.binary:
            return self._search_binary(q, int(k))
        scores, ids = self.index.search(q, int(k))  # (nq, k), (nq, k)
        scores[ids < 0] = -np.inf
        return scores, ids

    def _search_binary(self, q: np.ndarray, k: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        n_cand = min(self.ntotal, max(k, self.rescore_factor * k))
        out_s, out_i = [], []
        for s0 in range(0, len(q), chunk):
            qc = q[s0:s0 + chunk]  # (nq, d)
            _, cand = self.index.search(sign_bits(qc), n_cand)  # (nq, n_cand) by Hamming distance
            valid = cand >= 0
            safe = np.where(valid, cand, 0)
            if self.rescore == "float":
                docs = self.vectors[safe]  # (nq, n_cand, d)
            else:  # the +-1 codes, scaled to unit norm
                bits = np.unpackbits(self._binary_codes()[safe], axis=-1, count=self.d)  # (nq, n_cand, d)
                docs = (bits.astype(np.float32) * 2 - 1) / np.float32(math.sqrt(self.d))
            s = np.einsum("qcd,qd->qc", docs, qc)  # (nq, n_cand)
            s[~valid] = -np.inf
            order = np.argsort(-s, axis=1, kind="stable")[:, :k]
            scores, ids = np.take_along_axis(s, order, 1), np.take_along_axis(cand, order, 1)
            ids[~np.isfinite(scores)] = -1
            out_s.append(scores.astype(np.float32))
            out_i.append(ids)
        return np.concatenate(out_s), np.concatenate(out_i)

    def set_search_params(self, params: str) -> "AnnIndex":
        """Change search-time parameters in place, without rebuilding: ``"efSearch=256"`` (HNSW),
        ``"nprobe=32"`` (IVF), ``"rescore_factor=30"`` (binary); returns the index.

        >>> import numpy as np
        >>> x = np.eye(4, dtype=np.float32)
        >>> build_index(x, "HNSW").set_search_params("efSearch=128").search_params
        'efSearch=128'
        """
        _set_params(self, params)
        return self

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index with FAISS's own I/O to ``path`` (``faiss.read_index`` or, for binary
        indexes, ``faiss.read_index_binary`` reads it back), plus ``path.json`` (name, factory,
        parameters) and, for float re-scoring, the vectors as a FAISS flat index at ``path.vectors``."""
        faiss = _faiss()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.binary:
            faiss.write_index_binary(self.index, str(path))
        else:
            faiss.write_index(self.index, str(path))
        if self.vectors is not None:
            flat = faiss.IndexFlatIP(self.d)
            flat.add(self.vectors)
            faiss.write_index(flat, str(path) + ".vectors")
        meta = {"name": self.name, "factory": self.factory, "d": self.d, "search_params": self.search_params,
                "rescore": self.rescore, "rescore_factor": self.rescore_factor, "build_seconds": self.build_seconds,
                "faiss": faiss.__version__}
        Path(str(path) + ".json").write_text(json.dumps(meta, indent=2))
        return path


def sign_bits(x: np.ndarray) -> np.ndarray:
    """(n, d) floats -> (n, d/8) uint8: bit j of a row is 1 where x[:, j] > 0 (d a multiple of 8)."""
    x = np.asarray(x)
    if x.shape[-1] % 8:
        raise AnnError(f"binary codes need d divisible by 8, got d={x.shape[-1]}")
    return np.ascontiguousarray(np.packbits(x > 0, axis=-1))


def load_index(path: str | os.PathLike) -> AnnIndex:
    """Read an index written by :meth:`AnnIndex.save` (or a bare FAISS file: then searched as is)."""
    faiss = _faiss()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no index file at {path}")
    meta_path = Path(str(path) + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("rescore"):
        index = faiss.read_index_binary(str(path))
        vectors = None
        if meta["rescore"] == "float":
            flat = faiss.read_index(str(path) + ".vectors")
            vectors = flat.reconstruct_n(0, flat.ntotal)  # (n, d)
        return AnnIndex(index, meta["name"], meta["factory"], meta["d"], meta.get("search_params", ""),
                        meta["rescore"], meta.get("rescore_factor", 10), vectors, meta.get("build_seconds", 0.0))
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as e:
        raise AnnError(f"{path} is not a FAISS float index ({str(e).splitlines()[-1][:120]})") from None
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise AnnError(f"{path} holds an index with metric {index.metric_type}; ternlib.ann searches by inner product")
    return AnnIndex(index, meta.get("name", path.name), meta.get("factory", "?"), index.d,
                    meta.get("search_params", ""), build_seconds=meta.get("build_seconds", 0.0))


def build_index(x: np.ndarray, spec: str | Preset = "HNSW", search_params: str | None = None,
                normalize: bool = False, train: np.ndarray | None = None) -> AnnIndex:
    """Train (if needed) and fill an inner-product index over the unit-norm rows of ``x`` (n, d).

    ``spec`` is a preset name (:data:`PRESETS`) or any FAISS factory string (``"IVF256,PQ16"``;
    a string starting with ``B`` such as ``"BFlat"`` or ``"BHNSW32"`` is a binary index re-scored
    against its codes). ``search_params`` overrides the preset's, e.g. ``"nprobe=64"`` or
    ``"efSearch=128"`` (``faiss.ParameterSpace`` syntax). ``train`` defaults to ``x``.
    """
    faiss = _faiss()
    x = _check_vectors(_unit(x) if normalize else x, None, "vectors")
    if len(x) == 0:
        raise AnnError("cannot build an index from 0 vectors")
    n, d = x.shape
    if isinstance(spec, Preset):
        preset = spec
    elif spec in PRESETS:
        preset = PRESETS[spec]
    elif isinstance(spec, str) and spec:
        preset = Preset(spec, spec, binary=spec.startswith("B"), rescore="codes" if spec.startswith("B") else "")
    else:
        raise AnnError(f"unknown index {spec!r}: a preset ({', '.join(PRESETS)}) or a FAISS factory string")
    train_x = x if train is None else _check_vectors(train, d, "training vectors")
    sizes = ivf_sizes(len(train_x), d)
    factory = preset.factory.format(**sizes)
    params = (preset.search_params if search_params is None else search_params).format(**sizes)
    start = time.perf_counter()
    try:
        if preset.binary:
            index = faiss.index_binary_factory(d, factory)
        else:
            index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise AnnError(f"FAISS cannot build {factory!r} for d={d}: {str(e).splitlines()[-1][:200]}") from None
    if preset.ef_construction and hasattr(index, "hnsw"):
        index.hnsw.efConstruction = preset.ef_construction
    out = AnnIndex(index, preset.name, factory, d, params, preset.rescore, preset.rescore_factor)
    if not index.is_trained:
        need = _min_train(factory)
        if len(train_x) < need:
            raise AnnError(f"{factory!r} needs at least {need} training vectors, got {len(train_x)}: "
                           f"use fewer IVF cells or PQ bits, or a preset (which size themselves to the data)")
        index.train(sign_bits(train_x) if preset.binary else train_x)
    out.add(x)
    if params:
        _set_params(out, params)
    out.build_seconds = time.perf_counter() - start
    return out


def _min_train(factory: str) -> int:
    """Vectors needed to train ``factory``: the largest k-means (IVF cells, 2^nbits PQ centroids)."""
    import re

    need = 1
    for m in re.finditer(r"IVF(\d+)", factory):
        need = max(need, int(m.group(1)))
    for m in re.finditer(r"PQ\d+(?:x(\d+))?", factory):
        need = max(need, 2 ** int(m.group(1) or 8))
    return need


def _set_params(index: AnnIndex, params: str) -> None:
    faiss = _faiss()
    space = faiss.ParameterSpace() if not index.binary else None
    try:
        if space is not None:
            space.set_index_parameters(index.index, params)
        else:  # binary indexes: nprobe / efSearch by hand
            for part in filter(None, params.split(",")):
                key, _, value = part.partition("=")
                target = faiss.downcast_IndexBinary(index.index)
                if key == "efSearch":
                    target.hnsw.efSearch = int(value)
                elif key == "nprobe":
                    target.nprobe = int(value)
                elif key == "rescore_factor":
                    index.rescore_factor = int(value)
                else:
                    raise RuntimeError(f"could not set parameter {key}")
    except RuntimeError as e:
        raise AnnError(f"cannot set {params!r} on {index.factory!r}: {str(e).splitlines()[-1][:200]}") from None
    index.search_params = params


# ---------------------------------------------------------------------------------------------
# encoders and cached embeddings


@dataclass
class Encoder:
    """A sentence encoder with a short ``name`` for tables and a ``key`` for the embedding cache."""

    name: str
    key: str
    model: Any

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), d) unit-norm float32 embeddings."""
        from .models import quiet_hf

        with quiet_hf():
            emb = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return normalize(emb)


def load_encoder(spec: str = "fp32", activations: str = "int8") -> Encoder:
    """``"fp32"`` (all-MiniLM-L6-v2), a ternlib checkpoint directory (loaded frozen, with
    ``activations`` int8: the fast CPU kernels) or another sentence-transformers model."""
    from . import load, load_text_encoder

    if spec in ("fp32", "FP32", None):
        return Encoder("FP32", "fp32-all-MiniLM-L6-v2", load_text_encoder().eval())
    path = Path(spec)
    if (path / "ternlib.json").exists():
        digest = hashlib.sha256((path / "ternlib.json").read_bytes())
        for f in sorted(path.glob("*.safetensors")):
            digest.update(f"{f.name}:{f.stat().st_size}".encode())
        return Encoder("ternary", f"ternary-{digest.hexdigest()[:12]}-{activations}", load(path, activations=activations))
    if path.exists():
        raise FileNotFoundError(f"{path} is not a ternlib checkpoint (no ternlib.json); pass 'fp32' or a "
                                f"checkpoint directory written by ternlib.save")
    model = load_text_encoder(spec).eval()
    return Encoder(spec.rsplit("/", 1)[-1], "st-" + "".join(c if c.isalnum() else "_" for c in spec), model)


def corpus_hash(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def embed(encoder: Encoder, texts: Sequence[str], cache_dir: str | os.PathLike | None = CACHE_DIR,
          batch_size: int = 64, chunk: int = 2048, progress: bool = True, desc: str = "") -> np.ndarray:
    """(len(texts), d) unit-norm embeddings, encoded once per (encoder, corpus) and cached as
    ``<cache_dir>/<encoder key>-<corpus hash>.npy`` (``cache_dir=None``: no cache)."""
    from tqdm.auto import tqdm

    texts = list(texts)
    if not texts:
        raise AnnError("nothing to encode")
    path = Path(cache_dir) / f"{encoder.key}-{corpus_hash(texts)}.npy" if cache_dir is not None else None
    if path is not None and path.exists():
        emb = np.load(path)
        if emb.shape[0] == len(texts):
            return emb
    parts = []
    with tqdm(total=len(texts), desc=desc or f"encoding ({encoder.name})", unit="text", disable=not progress) as bar:
        for i in range(0, len(texts), chunk):
            parts.append(encoder.encode(texts[i:i + chunk], batch_size))
            bar.update(len(parts[-1]))
    emb = np.concatenate(parts)  # (n, d)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, emb)
        os.replace(tmp, path)
    return emb


# ---------------------------------------------------------------------------------------------
# evaluation


def neighbour_recall(ids: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean over queries of |found top-k ∩ exact top-k| / k (the usual k-recall@k)."""
    ids, exact = np.asarray(ids)[:, :k], np.asarray(exact)[:, :k]
    if len(ids) != len(exact):
        raise AnnError(f"{len(ids)} result rows but {len(exact)} exact rows")
    hit = (ids[:, :, None] == exact[:, None, :]) & (ids[:, :, None] >= 0)  # (nq, k, k)
    return float(hit.any(2).sum(1).mean() / k)


def task_metrics(ids: np.ndarray, relevant: Sequence[Sequence[int]], k: int = 10, chunk: int = 512) -> dict[str, float]:
    """nDCG@10, recall@1, recall@10 and MRR@10 of ranked result ids (nq, >= k), computed by
    :func:`ternlib.evaluation.metrics.ranking_metrics` on a compact score matrix per chunk of
    queries: k placeholder columns (never relevant, they fill slots an index left empty), then
    every retrieved or relevant document of the chunk; retrieved documents score by rank."""
    from .evaluation.metrics import ranking_metrics

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
    return {name: float(np.concatenate(v).mean()) for name, v in parts.items()}


def load_corpus(n_queries: int | None = None, n_docs: int | None = None, seed: int = 0):
    """The WordNet retrieval set (:func:`ternlib.evaluation.data.wordnet_retrieval`): all 48,224
    queries against 117,659 documents, or a sample of ``n_queries`` with about ``n_docs`` documents
    (the relevant ones plus distractors, half of them other senses of the same words)."""
    from .evaluation.data import wordnet_retrieval

    if n_queries is None:
        return wordnet_retrieval()
    n_docs = 10 * n_queries if n_docs is None else n_docs
    return wordnet_retrieval(n_queries=n_queries, n_distractors=max(0, n_docs - n_queries), seed=seed)


def machine() -> dict[str, Any]:
    import torch

    faiss = _faiss()
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
    from .bench import interleaved

    def one_by_one(index):
        return lambda: [index.search(q[i:i + 1], k) for i in range(len(q))]

    med = interleaved({name: one_by_one(ix) for name, ix in indexes.items()}, repeats=repeats, warmup=1)
    return {name: len(q) / t for name, t in med.items()}


def benchmark(encoders: dict[str, Encoder] | Sequence[Encoder], data=None, indexes: Iterable[str] = DEFAULT_PRESETS,
              k: int = 10, teacher: Encoder | None = None, cache_dir: str | os.PathLike | None = CACHE_DIR,
              batch1_queries: int = 50, latency_queries: int = 20, repeats: int = 5, latency_repeats: int = 30,
              batch_size: int = 64, progress: bool = True, keep: bool = False) -> dict[str, Any]:
    """Every index preset with every encoder on a retrieval set, as one JSON-able dict.

    ``data`` is a :class:`~ternlib.evaluation.data.RetrievalData` (default: the full WordNet set).
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
    from .bench import interleaved

    faiss = _faiss()
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

    from .models import quiet_hf

    with quiet_hf():
        med = interleaved({label: e2e(*pair) for label, pair in pairs.items()}, repeats=latency_repeats, warmup=2)
    res["latency"] = {"reference": ref_label, "queries": len(texts), "repeats": latency_repeats,
                      "ms": {label: 1e3 * t for label, t in med.items()},
                      "ratio": {label: t / med[ref_label] for label, t in med.items()}}
    for row in res["rows"]:
        label = f"{row['encoder']} + {row['index']}"
        row["e2e ms"], row["e2e vs FP32+Flat"] = 1e3 * med[label], med[label] / med[ref_label]
    ref_ndcg = next(r["ndcg@10"] for r in res["rows"] if r["encoder"] == teacher.name and r["index"] == "Flat") \
        if teacher.name in {e.name for e in encs.values()} else task_metrics(exact_teacher, data.relevant, k=k)["ndcg@10"]
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
    lines += ["", f"{c['queries']:,} queries, {c['documents']:,} documents, k = {res['k']}; "
                  f"latency reference: {res['latency']['reference']} ({res['latency']['ms'][res['latency']['reference']]:.2f} ms)"]
    return "\n".join(lines)


def targets(res: dict[str, Any], encoder: str = "ternary", index: str = "HNSW") -> list[dict[str, Any]]:
    """The issue's two targets for ``encoder`` + ``index``: nDCG@10 >= 97% of FP32 + exact search,
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

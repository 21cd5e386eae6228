"""FAISS indexes on unit-norm embeddings: the named presets, build / search / save / load, and guard rails."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FAISS_INSTALL = "pip install faiss-cpu  (or faiss-gpu on a CUDA machine)"
NORM_TOLERANCE = 1e-3  # |norm - 1| allowed for inner-product (cosine) search


class AnnError(ValueError):
    """A wrong use of an ANN index (shapes, empty or untrained index, k, normalization)."""


def require_faiss():
    """The faiss module, or an ImportError naming the install command."""
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
    Preset("HNSW", "HNSW32", "efSearch=64", "layered proximity graph, R = 32 (FAISS's M): 2R = 64 links a "
           "node on the bottom layer, R on the few upper layers; efSearch candidates in the walk",
           ef_construction=80),
    Preset("IVF-PQ+refine", "IVF{nlist},PQ{pq_m}x{pq_nbits},RFlat", "nprobe={nprobe},k_factor_rf=10",
           "IVF with product-quantized codes (d/8 bytes a vector); the 10k best re-ranked exactly"),
    Preset("SQ8", "SQ8", "", "every dimension as one byte (scalar quantization), exhaustive search"),
    Preset("Binary+rescore", "BFlat", "", "1 sign bit per dimension, Hamming search, the 10k best "
           "re-scored with the float query against the bits (only bits stored)", binary=True, rescore="codes"),
    Preset("Binary+float-rescore", "BFlat", "", "1 sign bit per dimension, Hamming search, the 10k best "
           "re-scored with the stored float vectors", binary=True, rescore="float"),
    Preset("LSH", "LSH128r", "", "the paper's IndexLSH(d, 128): a random rotation to 128 directions, one sign bit "
           "each (16 bytes a vector), Hamming search, no re-scoring; scores are cos(pi h / 128)"),
]}
#: The presets ``benchmark`` and ``python -m ternlib ann`` measure by default (the stored full run of
#: chapter 6); ``LSH``, the paper's family, is measured by ``experiments/ann_paper_protocol.py``.
DEFAULT_PRESETS = tuple(name for name in PRESETS if name != "LSH")


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
    def lsh_bits(self) -> int:
        """Bits per code of a FAISS ``IndexLSH`` (searched by Hamming distance), 0 for any other index."""
        if self.binary:
            return 0
        faiss = require_faiss()
        inner = faiss.downcast_index(self.index)
        return int(inner.nbits) if isinstance(inner, faiss.IndexLSH) else 0

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def nbytes(self) -> int:
        """Memory of the index as FAISS serializes it (plus the float vectors kept for re-scoring)."""
        faiss = require_faiss()
        n = (faiss.serialize_index_binary(self.index) if self.binary else faiss.serialize_index(self.index)).nbytes
        return int(n + (self.vectors.nbytes if self.vectors is not None else 0))

    def _binary_codes(self) -> np.ndarray:
        if self._codes is None or len(self._codes) != self.ntotal:
            faiss = require_faiss()
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
        vectors in the index. An ``IndexLSH`` (the ``LSH`` preset) ranks by the Hamming distance
        ``h`` of its ``b``-bit codes; its scores are ``cos(pi h / b)``, the random-hyperplane
        estimate of the cosine. An approximate index may leave slots unfilled (e.g. IVF with too
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
        bits = self.lsh_bits
        if bits:  # IndexLSH returns Hamming distances h (lower is better): the SimHash cosine estimate
            scores = np.cos(np.pi * scores / bits).astype(np.float32)
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
        faiss = require_faiss()
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


def _is_lsh_factory(factory: str) -> bool:
    """``LSH``, ``LSH128``, ``LSH128r``, ``LSH128rt``: FAISS's IndexLSH (which the factory builds for L2 only)."""
    import re

    return re.fullmatch(r"LSH\d*r?t?", factory) is not None


def sign_bits(x: np.ndarray) -> np.ndarray:
    """(n, d) floats -> (n, d/8) uint8: bit j of a row is 1 where x[:, j] > 0 (d a multiple of 8)."""
    x = np.asarray(x)
    if x.shape[-1] % 8:
        raise AnnError(f"binary codes need d divisible by 8, got d={x.shape[-1]}")
    return np.ascontiguousarray(np.packbits(x > 0, axis=-1))


def load_index(path: str | os.PathLike) -> AnnIndex:
    """Read an index written by :meth:`AnnIndex.save` (or a bare FAISS file: then searched as is)."""
    faiss = require_faiss()
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
    if index.metric_type != faiss.METRIC_INNER_PRODUCT and not isinstance(faiss.downcast_index(index), faiss.IndexLSH):
        raise AnnError(f"{path} holds an index with metric {index.metric_type}; ternlib.ann searches by inner product")
    return AnnIndex(index, meta.get("name", path.name), meta.get("factory", "?"), index.d,
                    meta.get("search_params", ""), build_seconds=meta.get("build_seconds", 0.0))


def build_index(x: np.ndarray, spec: str | Preset = "HNSW", search_params: str | None = None,
                normalize: bool = False, train: np.ndarray | None = None) -> AnnIndex:
    """Train (if needed) and fill an inner-product index over the unit-norm rows of ``x`` (n, d).

    ``spec`` is a preset name (:data:`PRESETS`) or any FAISS factory string (``"IVF256,PQ16"``;
    a string starting with ``B`` such as ``"BFlat"`` or ``"BHNSW32"`` is a binary index re-scored
    against its codes; ``"LSH128r"`` is ``faiss.IndexLSH(d, 128)``, the ``LSH`` preset).
    ``search_params`` overrides the preset's, e.g. ``"nprobe=64"`` or ``"efSearch=128"``
    (``faiss.ParameterSpace`` syntax). ``train`` defaults to ``x``.
    """
    faiss = require_faiss()
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
            # IndexLSH compares sign bits by Hamming distance whatever the metric; the factory wants L2
            metric = faiss.METRIC_L2 if _is_lsh_factory(factory) else faiss.METRIC_INNER_PRODUCT
            index = faiss.index_factory(d, factory, metric)
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
    faiss = require_faiss()
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

"""Encoders for ANN search (``"fp32"`` or a ternlib checkpoint) and their corpus embeddings, cached as .npy."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.assets import cache_dir as user_cache_dir
from .index import AnnError, normalize  # noqa: F401

CACHE_DIR = user_cache_dir() / "ann"  # the data layer's user cache ($TERNLIB_CACHE, else ~/.cache/ternlib)


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
        from ..models import quiet_hf

        with quiet_hf():
            emb = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return normalize(emb)


def load_encoder(spec: str = "fp32", activations: str = "int8") -> Encoder:
    """``"fp32"`` (all-MiniLM-L6-v2), a ternlib checkpoint directory (loaded frozen, with
    ``activations`` int8: the fast CPU kernels) or another sentence-transformers model."""
    from ..checkpoint import load
    from ..models import load_text_encoder

    if spec in ("fp32", "FP32", None):
        return Encoder("FP32", "fp32-all-MiniLM-L6-v2", load_text_encoder().eval())
    path = Path(spec)
    if (path / "ternlib.json").exists():
        digest = hashlib.sha256((path / "ternlib.json").read_bytes())
        for f in sorted(path.glob("*.safetensors")):
            digest.update(f"{f.name}:{f.stat().st_size}".encode())
        return Encoder("ternary", f"ternary-{digest.hexdigest()[:12]}-{activations}",
                       load(path, activations=activations))
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



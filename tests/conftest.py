"""Shared fixtures: offline hub settings, CPU threads per xdist worker, the bundled MiniLM, tiny configs."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a failed hub call would stall ~25 s
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# pytest-xdist workers share the machine's cores: each worker (and every kernel or subprocess it starts: the
# chapters, the Colab plays) gets its share for OpenMP/torch. Without it, 2 workers on 2 cores each start 2
# OpenMP threads, which spin-wait on each other: `make test` took 11:15 instead of 5:49 on 2 cores.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["OMP_NUM_THREADS"] = str(max(1, _cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

import copy

import pytest
import torch


@pytest.fixture(scope="session")
def minilm_fp():
    """The full-precision all-MiniLM-L6-v2 SentenceTransformer (offline copy); do not modify."""
    from ternlib import load_text_encoder

    return load_text_encoder()


@pytest.fixture()
def minilm(minilm_fp):
    """A fresh copy of MiniLM that a test may quantize."""
    return copy.deepcopy(minilm_fp)


@pytest.fixture(scope="session")
def tiny_sentence_transformer(minilm_fp, tmp_path_factory):
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer, as a SentenceTransformer (mean pooling,
    normalized); do not modify (``copy.deepcopy`` it first)."""
    import warnings

    from transformers import BertConfig, BertModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import SentenceTransformer, models

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = minilm_fp.tokenizer
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    modules = [models.Transformer(str(folder)), models.Pooling(32, "mean"), models.Normalize()]
    return SentenceTransformer(modules=modules, device="cpu").eval()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    """Each chapter executes once per run: a chapter that tests/book/test_colab.py plays as in Colab (from its
    first cell, in fast mode, with every assertion of the chapter) is not executed a second time by nbmake in
    book/. Running a chapter alone (pytest --nbmake book/NN.ipynb) still runs it."""
    import re

    played = {m.group(1) for item in items if (m := re.search(r"test_chapter_runs_as_in_colab\[(\w+)\]", item.nodeid))}
    twice = [item for item in items
             if re.fullmatch(r"book/(\w+)\.ipynb::\1\.ipynb", item.nodeid) and item.nodeid[5:].split(".")[0] in played]
    if twice:
        config.hook.pytest_deselected(items=twice)
        items[:] = [item for item in items if item not in twice]

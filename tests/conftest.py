"""Shared fixtures: offline hub settings, the bundled MiniLM, tiny transformers configs."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a failed hub call would stall ~25 s
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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

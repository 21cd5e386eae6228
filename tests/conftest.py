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

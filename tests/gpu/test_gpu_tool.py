"""experiments/gpu_distill.py: the run specs and the span texts it trains on (the GPU part needs a GPU)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "experiments" / "gpu_distill.py"
spec = importlib.util.spec_from_file_location("gpu_distill", SCRIPT)
gpu_distill = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_distill)


def test_parse_spec():
    name, o = gpu_distill.parse_spec("b256:batch=256,steps=1200,contrastive=0.3,lr=2e-3,text=brown+spans")
    assert name == "b256" and o == {"losses": {"contrastive": 0.3}, "batch": 256, "steps": 1200, "lr": 2e-3,
                                    "text": "brown+spans"}
    with pytest.raises(SystemExit, match="unknown key 'epochs'"):
        gpu_distill.parse_spec("x:epochs=3")
    with pytest.raises(SystemExit, match="text must be"):
        gpu_distill.parse_spec("x:text=wiki")


def test_spans_are_short_pieces_of_their_sentences():
    sents = ["one two three four five six seven eight nine ten eleven twelve thirteen", "too short here"]
    out = gpu_distill.spans(sents * 20, seed=0)
    assert out[:40] == sents * 20 and len(out) == 60  # every sentence, then one span per long sentence
    for s in out[40:]:
        assert 3 <= len(s.split()) <= 12 and s in sents[0]
    assert gpu_distill.spans(sents, seed=1) == gpu_distill.spans(sents, seed=1)

"""experiments/ablation.py: the ablation behind chapter 2 runs, resumes and refuses changed settings."""
import math

import pytest
import torch

from experiments.ablation import main, retention, run_ablation, variants


def test_ablation_runs_and_resumes(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "ablation.json"
    kw = dict(axes=("steps",), steps=4, batch_size=4, tasks=["lee-sts"], train_sentences=40, progress=False)
    rows = run_ablation(out, **kw)
    assert [r["variant"] for r in rows] == ["steps=0", "steps=1", "steps=4", "steps=16"]
    assert rows[0]["final_loss"] is None and rows[-1]["final_loss"] < rows[1]["final_loss"]
    assert all(math.isfinite(r["retention"]["average"]) for r in rows)
    assert run_ablation(out, **kw) == rows  # nothing left to run
    with pytest.raises(ValueError, match="other settings"):
        run_ablation(out, **{**kw, "steps": 5})
    assert [n for n, _ in variants("losses")][0] == "hidden (paper)"
    with pytest.raises(ValueError, match="unknown ablation axis"):
        variants("dropout")
    assert retention({"tasks": {"a": {"main": 0.5}}}, {"tasks": {"a": {"main": 1.0}}}) == {"a": 0.5, "average": 0.5}


def test_ablation_command_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--axes" in capsys.readouterr().out

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ternlib.cli import main


def test_help_runs():
    out = subprocess.run([sys.executable, "-m", "ternlib", "--help"], capture_output=True, text=True, check=True)
    assert "quantize" in out.stdout and "storage" in out.stdout


def test_quantize_and_storage(tmp_path, capsys):
    assert main(["quantize", "--out", str(tmp_path / "ck"), "--packing", "5trit"]) == 0
    assert "saved to" in capsys.readouterr().out
    assert main(["storage", str(tmp_path / "ck"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ternary linear"]["ratio"] <= 0.055


def test_bad_arguments():
    with pytest.raises(SystemExit):
        main(["quantize", "--out", "x", "--beta", "two"])
    with pytest.raises(SystemExit):
        main(["frobnicate"])


@pytest.mark.skipif(__import__("ternlib.data.assets").data.assets.where()["fashion-mnist"] == "missing",
                    reason="ternlib data fetch fashion-mnist")
def test_vision_end_to_end_tiny(tmp_path, capsys):
    """The chapter 5 command on a tiny budget: trains a teacher, distills, probes, writes everything."""
    out = tmp_path / "img"
    assert main(["vision", "--out", str(out), "--fast", "--quiet", "--train-images", "256", "--teacher-epochs", "0.5",
                 "--steps", "2", "--recipes", "paper"]) == 0
    assert "| ternary paper |" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert set(res["probes"]) == {"FP32", "ternary RTN", "ternary paper", "pixels"}
    assert (out / "teacher" / "model.safetensors").exists() and (out / "paper" / "model" / "ternlib.json").exists()
    assert res["storage"]["ternary paper"]["total"]["ratio"] < 0.15
    with pytest.raises(SystemExit):
        main(["vision", "--out", str(out), "--recipes", "nope"])


@pytest.mark.parametrize("command, cls_path, skip", [
    ("distill", "ternlib.distill.DistillConfig", ()),
    ("distill", "ternlib.config.TernaryConfig", ()),
    ("quantize", "ternlib.config.TernaryConfig", ()),
    ("eval", "ternlib.config.TernaryConfig", ("activations",)),  # eval's --activations: the loaded model's
    ("vision", "ternlib.vision.ImageExperimentConfig", ()),
])
def test_options_come_from_the_config_dataclasses(command, cls_path, skip, capsys):
    """Every field of the config is an option of the command, with the help its docstring gives."""
    import dataclasses
    import importlib

    from ternlib.cli.options import field_help

    module, name = cls_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    helps = field_help(cls)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        assert f.name in helps, f"{name}.{f.name} has no entry in the docstring's Args section"
        assert "--" + f.name.replace("_", "-") in text
        assert " ".join(helps[f.name].split()[:4]) in text


def test_console_script_is_installed():
    import shutil
    import subprocess

    exe = shutil.which("ternlib") or str(Path(sys.executable).parent / "ternlib")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "distill" in res.stdout and "vision" in res.stdout

import json
import subprocess
import sys

import pytest

from ternlib.__main__ import main


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

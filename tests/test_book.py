"""The book: config sanity, stored outputs from full runs, and a -W build that must pass."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def test_toc_files_exist():
    for f in _toc_files():
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(nb_path):
    nb = json.loads(nb_path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    first = cells[0]
    assert first["cell_type"] == "code" and "remove-cell" in first["metadata"].get("tags", [])
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert "google.colab" in "".join(first["source"]) and f"git+{url}" in "".join(first["source"])
    assert any("parameters" in c["metadata"].get("tags", []) for c in cells), "no parameters cell"
    code = [c for c in cells if c["cell_type"] == "code"]
    # stored outputs come from one complete run: every code cell but the Colab one executed, in order
    counts = [c["execution_count"] for c in code[1:]]
    assert all(isinstance(n, int) for n in counts), "notebook has cells that were not executed"
    assert counts == sorted(counts)
    for c in code:
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"stored error output in {nb_path.name}"
            assert out.get("name") != "stderr", f"stderr output in {nb_path.name}: {''.join(out.get('text', ''))[:200]}"
    assert sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])) >= 3


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    exe = Path(sys.executable).parent / "jupyter-book"
    out = subprocess.run([str(exe), "build", str(ROOT), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    for f in _toc_files():
        page = html / f"{f}.html"
        assert page.exists(), page
    for nb in NOTEBOOKS:
        page = (html / "book" / f"{nb.stem}.html").read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert len(images) >= 3, nb.name
        for src in images:
            if not src.startswith(("http", "data:")):
                assert (html / "book" / src).resolve().exists(), src
        assert "colab.research.google.com" in page

"""Re-execute the book's notebooks in full mode, in place, storing the outputs the book shows.

Usage: python tools/run_notebooks.py [book/NAME.ipynb | book/NAME.md ...]
(default: every book/*.ipynb, in the order of _toc.yml; notebooks not in the toc come last)

`make notebooks` runs it. Each chapter is a jupytext pair (book/NAME.md, the MyST Markdown source,
and book/NAME.ipynb, the same cells with stored outputs): before running a chapter, the pair is
synchronized with `jupytext --sync`, so the inputs come from whichever of the two files was modified
last (the .md after an edit), then the .ipynb is executed and written, and the pair is synchronized
again (the .md stays the more recent file, as jupytext expects).

Prints how long each chapter took. Widget state is stored so sliders render in the book. Stops at
the first chapter that fails, leaving that notebook as the sync left it (new inputs, old outputs).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def toc_notebooks() -> list[Path]:
    """Every book/*.ipynb: those in _toc.yml in its order, then any others by name."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    in_toc = [ROOT / f"{e}.ipynb" for e in entries if (ROOT / f"{e}.ipynb").exists()]
    rest = sorted(p for p in (ROOT / "book").glob("*.ipynb") if p not in in_toc)
    return in_toc + rest


def sync(path: Path) -> None:
    """`jupytext --sync` on the pair of book/NAME.ipynb (inputs from the more recently modified file,
    outputs kept from the .ipynb); nothing to do for a notebook without a paired .md."""
    md = path.with_suffix(".md")
    if not md.exists():
        return
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(md)], check=True)


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    env_fast = os.environ.pop("TERNLIB_FAST", None)  # full mode
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                       store_widget_state=True).execute()
        elapsed = time.perf_counter() - start
    finally:
        if env_fast is not None:
            os.environ["TERNLIB_FAST"] = env_fast
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    paths = [Path(p).resolve().with_suffix(".ipynb") for p in argv] or toc_notebooks()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print("chapters:", ", ".join(p.name for p in paths), flush=True)
    total = 0.0
    for p in paths:
        sync(p)
        print(f"running {p.name} ...", flush=True)
        t = run(p)
        sync(p)
        total += t
        print(f"  {p.name}: {t / 60:.1f} min", flush=True)
    print(f"all notebooks: {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

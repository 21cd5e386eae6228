"""Re-execute the book's notebooks in full mode, in place, storing the outputs the book shows.

Usage: python tools/run_notebooks.py [book/NAME.ipynb ...]   (default: every notebook in book/)
Prints how long each chapter took. Widget state is stored so sliders render in the book.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


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
    paths = [Path(p) for p in argv] or sorted((ROOT / "book").glob("*.ipynb"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    total = 0.0
    for p in paths:
        print(f"running {p.name} ...", flush=True)
        t = run(p)
        total += t
        print(f"  {p.name}: {t / 60:.1f} min", flush=True)
    print(f"all notebooks: {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

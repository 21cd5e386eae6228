"""Helpers for the scripts that write chapter notebooks (tools/make_ch*.py): cells, the Colab cell, writing.

Usage inside a make script::

    from nbbuild import Notebook
    nb = Notebook()
    nb.md("# Title")
    nb.code("print(1)", ["parameters"])
    nb.write("04_fast_kernels.ipynb")      # into book/
"""
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parent.parent
COLAB = '''
import sys
if "google.colab" in sys.modules:
    %pip install -q "ternlib[book] @ git+https://github.com/ternlib/ternlib"
'''


class Notebook:
    """A chapter under construction; starts with the hidden Colab install cell every chapter has."""

    def __init__(self) -> None:
        self.cells = []
        self.code(COLAB, ["remove-cell"])

    def md(self, text: str) -> None:
        self.cells.append(nbf.v4.new_markdown_cell(text.strip("\n")))

    def code(self, text: str, tags: list[str] | None = None) -> None:
        c = nbf.v4.new_code_cell(text.strip("\n"))
        if tags:
            c.metadata["tags"] = tags
        self.cells.append(c)

    def write(self, name: str) -> Path:
        nb = nbf.v4.new_notebook(cells=self.cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        path = ROOT / "book" / name
        nbf.write(nb, path)
        print(f"wrote book/{name}")
        return path

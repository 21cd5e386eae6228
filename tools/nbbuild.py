"""Helpers for the scripts that write chapter notebooks (tools/make_ch*.py): cells, the Colab cell, writing.

Usage inside a make script::

    from nbbuild import Notebook
    nb = Notebook()
    nb.md("# Title")
    nb.code("print(1)", ["parameters"])
    nb.figure("plt.plot([1, 2]); plt.show()", "fig-ch4-line", "**Figure 4.1** A line.")
    nb.write("04_fast_kernels.ipynb")      # into book/

The conventions every chapter follows (tests/test_book.py checks them on the stored notebooks):

- the first cell is the hidden Colab install cell, installing from the repository URL of
  `_config.yml` (the one place the URL lives);
- the title is followed by an "Open in Colab" badge that links to the same repository
  (`colab_badge`; the badge image is inline, so the built book loads nothing from elsewhere);
- a cell that draws a figure carries its caption and label as myst-nb cell metadata
  (`{"mystnb": {"figure": {"caption": ..., "name": ...}}}`), and the same caption follows as a
  markdown cell tagged `remove-cell`: the book shows the metadata caption under the figure,
  Jupyter and Colab show the markdown cell.
"""
from pathlib import Path

import nbformat as nbf
import yaml

ROOT = Path(__file__).resolve().parent.parent


def repository() -> tuple[str, str]:
    """(url, branch) of the repository, from `_config.yml`."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def colab_cell() -> str:
    url, _ = repository()
    return f'''
import sys
if "google.colab" in sys.modules:
    %pip install -q "ternlib[book] @ git+{url}"
'''


# "Open in Colab", 97x20 PNG (drawn with Pillow and DejaVu Sans); inline so that the page works offline.
BADGE_PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAGEAAAAUCAMAAACqN6PjAAAAYFBMVEXrnlDfYgPxvITzxpfmgxzc2NNVVVXjcwBVVVWqVQBUVVXjdABJSUnhagDHx8dmZmanp6f48+/r6eeXl5e3t7e0ahw6OjrniCj21LDuq2Z1dXXwtnr65tL1zKKJiYnpkjmQb5J3AAAAIHRSTlP///////+DgwMD/v7//////////////////////////78RYPkAAAHWSURBVHja3ZXbkqMgEIYxmp0d6G5AGDmq7/+W22oSTWY2NTVVudilInbE+j/6hOL3L/mD8aG+Od7exY8A3yeoNyFfTFD/FQF4PJF8WLwRkMdu36wvCKCNd08A0wRfEtKpzFdZIa7K6TMBpt5MdN59uc2bMBgH14dHQh1Fqiy8eILxtBlK2bD7cyFoOw0AZw9ZO5NBQjZGS5n5dnlBL0s+w5GAcWxYqsOunILCtuBc2mX/VZRyTwDXwzaTda7PbE2GPbI0Ea3OeD+sSxqOPvBeF1DoS7JzM54aUUQcUfVn0dZ7gjkvhMkC+WHwBH0eBnLS5kH2+krgJTIHAgbbrfd2bJoSmbDEqKudsqLBesnKnQ8T++AA3FlbIurNoq53ggHwR4LqbNiClVCJiu0JRY2RH1aOGfOOBG3Z/YFolTHEm5cszOrwjIC1NGpLMabajAX7mUMUlJ1xxR5ryfdZGxYkm3M/gSetJy3tI4HuCbNNIYwi2DnU1DCI55Z9sDEI+9gPjshryXkwtBSm4TBpyb/1Wqp14ILdinbPNIY2joU7IcaksCSc45jaTrVpjDN+6mm5pILcIGH/K7frr6fG0gZ46GzcLDy0+sO5BOTg3zv5Xv8FevlX9A8PnVv/OVRFdQAAAABJRU5ErkJggg=="


def colab_url(name: str) -> str:
    """The Colab address of book/NAME, from the repository URL and branch in `_config.yml`."""
    url, branch = repository()
    slug = url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{slug}/blob/{branch}/book/{name}"


def colab_badge(name: str) -> str:
    """The markdown line of the "Open in Colab" badge for book/NAME."""
    return f"[![Open in Colab]({BADGE_PNG})]({colab_url(name)})"


class Notebook:
    """A chapter under construction; starts with the hidden Colab install cell every chapter has."""

    def __init__(self) -> None:
        self.cells = []
        self.code(colab_cell(), ["remove-cell"])

    def md(self, text: str, tags: list[str] | None = None) -> None:
        c = nbf.v4.new_markdown_cell(text.strip("\n"))
        if tags:
            c.metadata["tags"] = tags
        self.cells.append(c)

    def code(self, text: str, tags: list[str] | None = None) -> None:
        c = nbf.v4.new_code_cell(text.strip("\n"))
        if tags:
            c.metadata["tags"] = tags
        self.cells.append(c)

    def figure(self, text: str, name: str, caption: str, tags: list[str] | None = None) -> None:
        """A code cell that draws one figure, its caption and label, and the caption for notebook readers."""
        caption = caption.strip("\n")
        self.code(text, tags)
        self.cells[-1].metadata["mystnb"] = {"figure": {"caption": caption, "name": name}}
        self.md(caption, ["remove-cell"])

    def write(self, name: str) -> Path:
        first_md = next(c for c in self.cells if c.cell_type == "markdown")
        title, _, rest = first_md.source.partition("\n")
        assert title.startswith("# "), "the first markdown cell starts with the chapter title"
        first_md.source = f"{title}\n\n{colab_badge(name)}\n{rest}"
        nb = nbf.v4.new_notebook(cells=self.cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        path = ROOT / "book" / name
        nbf.write(nb, path)
        print(f"wrote book/{name}")
        return path

"""Every chapter is a jupytext pair, and the pair is in sync.

book/NN_name.md (MyST Markdown, the source to edit) and book/NN_name.ipynb (the same cells with the
stored outputs of a full run, which the book is built from). After editing the .md,
`jupytext --sync book/NN_name.md` copies its inputs into the .ipynb and keeps the outputs; these
tests fail until that is done (README.md, "How to edit a chapter").
"""
import re
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FORMATS = "ipynb,md:myst"
CHAPTER = re.compile(r"book/\d\d_[^/]+")  # a chapter of _toc.yml (intro, notation, references are plain pages)
# Cell metadata that jupytext keeps in the .ipynb only (execution timestamps and UI state): not compared.
IPYNB_ONLY_METADATA = {"execution", "ExecuteTime", "autoscroll", "collapsed", "scrolled", "trusted"}


def toc_chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [e for e in entries if CHAPTER.fullmatch(e) or (ROOT / f"{e}.ipynb").exists()]


def cell_view(nb) -> list[tuple[str, str, dict]]:
    """(type, source, metadata) of each cell: what the two files of a pair must agree on."""
    return [(c.cell_type, c.source, {k: v for k, v in c.metadata.items() if k not in IPYNB_ONLY_METADATA})
            for c in nb.cells]


def pair_differences(md: Path, ipynb: Path) -> list[str]:
    """What differs between the cells of the .md (read by jupytext) and those of the .ipynb; [] when in sync."""
    a, b = cell_view(jupytext.read(md)), cell_view(nbformat.read(ipynb, as_version=4))
    diffs = []
    if len(a) != len(b):
        diffs.append(f"{md.name} has {len(a)} cells, {ipynb.name} {len(b)}")
    for i, ((ta, sa, ma), (tb, sb, mb)) in enumerate(zip(a, b)):
        if ta != tb:
            diffs.append(f"cell {i}: {ta} in the .md, {tb} in the .ipynb")
        if sa != sb:
            diffs.append(f"cell {i}: source differs: {sa[:80]!r} vs {sb[:80]!r}")
        if ma != mb:
            diffs.append(f"cell {i}: metadata differs: {ma} vs {mb}")
        if len(diffs) >= 5:
            break
    return diffs


CHAPTERS = toc_chapters()


def test_toc_has_chapters():
    assert len(CHAPTERS) >= 7, CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.removeprefix("book/"))
def test_pair_in_sync(chapter):
    md, ipynb = ROOT / f"{chapter}.md", ROOT / f"{chapter}.ipynb"
    assert md.exists() and ipynb.exists(), f"{chapter}: both {md.name} and {ipynb.name} must exist"
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.metadata.get("jupytext", {}).get("formats") == FORMATS, \
        f"{ipynb.name} is not paired: jupytext --set-formats {FORMATS} {ipynb.relative_to(ROOT)}"
    text = jupytext.read(md).metadata.get("jupytext", {})
    assert text.get("formats") == FORMATS and text.get("text_representation", {}).get("format_name") == "myst", md.name
    diffs = pair_differences(md, ipynb)
    assert not diffs, (f"{md.name} and {ipynb.name} are out of sync (run: jupytext --sync {md.relative_to(ROOT)}):\n"
                       + "\n".join(diffs))


def test_book_builds_only_the_ipynb():
    """The .md twins are excluded from the build (else Sphinx finds two files for one document and -W fails);
    the plain pages (intro, notation, references) are not."""
    from sphinx.util.matching import Matcher

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    excluded = Matcher(config.get("exclude_patterns", []))
    for chapter in CHAPTERS:
        assert excluded(f"{chapter}.md") and not excluded(f"{chapter}.ipynb"), chapter
    pages = [p.relative_to(ROOT).as_posix() for p in (ROOT / "book").glob("*.md")]
    for page in pages:
        if page.removesuffix(".md") not in CHAPTERS:
            assert not excluded(page), f"{page} is excluded from the book"


# The negative control: each edit of a copy of a chapter's .md (left unsynced) must be caught.
EDITS = {
    "markdown text": lambda s: re.sub(r"^(# .+)$", r"\1, edited", s, count=1, flags=re.M),
    "code": lambda s: s.replace('if "google.colab" in sys.modules:', 'if "google.colab" in sys.modules and 0:', 1),
    "code cell tag": lambda s: s.replace(":tags: [remove-cell]", ":tags: [hide-input]", 1),
    "markdown cell tag": lambda s: s.replace('+++ {"tags": ["remove-cell"]}\n', "+++\n", 1),
    "figure caption": lambda s: s.replace("caption: '**Figure", "caption: '**Fig.", 1),
    "new cell": lambda s: s + "\n+++\n\nA paragraph added to the .md only.\n",
    "deleted cell": lambda s: re.sub(r"```\{code-cell\}.*?\n```\n", "", s, count=1, flags=re.S),
    "merged cells": lambda s: s.replace("\n+++\n\n", "\n\n", 1),
}


@pytest.fixture(scope="module")
def figure_chapter() -> str:
    """The first chapter whose .md has a figure caption and hidden caption cells, as every chapter should."""
    return next(c for c in CHAPTERS if "caption: '**Figure" in (ROOT / f"{c}.md").read_text()
                and '+++ {"tags": ["remove-cell"]}' in (ROOT / f"{c}.md").read_text())


def copy_pair(chapter: str, tmp_path: Path) -> tuple[Path, Path]:
    md, ipynb = tmp_path / f"{Path(chapter).name}.md", tmp_path / f"{Path(chapter).name}.ipynb"
    shutil.copy(ROOT / f"{chapter}.md", md)
    shutil.copy(ROOT / f"{chapter}.ipynb", ipynb)
    return md, ipynb


def test_unedited_copy_in_sync(figure_chapter, tmp_path):
    assert pair_differences(*copy_pair(figure_chapter, tmp_path)) == []


@pytest.mark.parametrize("edit", EDITS)
def test_edited_md_detected(edit, figure_chapter, tmp_path):
    md, ipynb = copy_pair(figure_chapter, tmp_path)
    text = md.read_text()
    edited = EDITS[edit](text)
    assert edited != text, f"the edit {edit!r} did not apply to {md.name}"
    md.write_text(edited)
    assert pair_differences(md, ipynb), f"an unsynced edit ({edit}) of {md.name} went unnoticed"

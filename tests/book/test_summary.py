"""The summary chapter (book/07_summary.ipynb): its table, from `experiments.report.summary_table`, shows
the numbers the chapters show. Each number links to a chapter notebook; the check is that its text,
exactly as formatted, appears in that notebook's stored outputs. A chapter whose notebook has no
stored outputs yet (chapter 5 while it is being written) skips its rows, saying so."""
import json
import math
from pathlib import Path

import pytest

from experiments import report

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
ARTIFACTS = BOOK / "artifacts"


@pytest.fixture(scope="module")
def rows():
    return report.summary_table(ARTIFACTS)  # loads the best text checkpoint once (its storage report)


def stored_outputs(nb_path: Path) -> str | None:
    """All text the notebook's stored outputs show (streams, text/plain, text/markdown, text/html);
    None when the notebook does not exist or has no outputs."""
    if not nb_path.exists():
        return None
    parts = []
    for cell in json.loads(nb_path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append("".join(out["text"]))
            for mime in ("text/plain", "text/markdown", "text/html"):
                if mime in out.get("data", {}):
                    parts.append("".join(out["data"][mime]))
    return "\n".join(parts) or None


def test_row_keys(rows):
    assert [r["key"] for r in rows] == list(report.ROW_KEYS)
    for r in rows:
        for side in ("ours", "paper"):
            cell = r[side]
            assert cell["template"].count("{}") == len(cell["figures"]), (r["key"], side)


@pytest.mark.parametrize("key", report.ROW_KEYS)
def test_number_is_shown_by_its_chapter(rows, key):
    row = next(r for r in rows if r["key"] == key)
    unchecked, checked = [], 0
    for side in ("ours", "paper"):
        for fig in row[side]["figures"]:
            assert fig["text"] and math.isfinite(fig["value"]), (side, fig)
            src = fig["source"]
            if not src.endswith(".ipynb"):
                assert src == report.PAPER_URL, f"{side} {fig['text']}: links neither to a chapter nor to the paper"
                continue
            shown = stored_outputs(BOOK / src)
            if shown is None:
                unchecked.append(f"{fig['text']} ({src} has no stored outputs yet)")
                continue
            assert fig["text"] in shown, f"{key} ({side}): {fig['text']} does not appear in the stored outputs of {src}"
            checked += 1
    if row["ours"]["template"] == report.NOT_RUN:
        unchecked.append("our result is not yet run (its artifact is missing)")
    if unchecked:
        pytest.skip(f"{key}: {checked} figure(s) checked; not checked: " + "; ".join(unchecked))


def test_summary_notebook_shows_the_current_table(rows):
    """The stored outputs of book/07_summary.ipynb show exactly the table the artifacts give now
    (rerun `python tools/run_notebooks.py book/07_summary.ipynb` after a new run of any chapter)."""
    shown = stored_outputs(BOOK / "07_summary.ipynb")
    assert shown is not None, "book/07_summary.ipynb has no stored outputs"
    assert report.summary_markdown(rows) in shown, "the stored summary table is out of date"


def test_links_point_to_chapters(rows):
    for _, _side, fig in report.figures(rows):
        if fig["source"].endswith(".ipynb"):
            stem = fig["source"].removesuffix(".ipynb")
            assert any((BOOK / f"{stem}{ext}").exists() for ext in (".ipynb", ".md")), fig["source"]


def test_missing_artifacts_are_not_yet_run(tmp_path):
    rows = report.summary_table(tmp_path)  # an empty artifacts directory: nothing has been run
    assert all(r["ours"] == {"template": report.NOT_RUN, "figures": []} for r in rows)
    table = report.summary_markdown(rows)
    assert table.count(report.NOT_RUN) == len(rows)
    assert "[0.964](03_evaluating_text.ipynb)" in table  # the paper's numbers are quoted all the same


def _storage(ratio: float) -> dict:
    return {"total": {"bytes": int(ratio * 1e6), "fp32_bytes": int(1e6), "ratio": ratio}}


def test_image_rows_from_results(tmp_path):
    """The image rows read ternlib.vision.run_experiment's results.json as chapter 5 does: the best
    linear probe among the distilled recipes, storage and latency of the last recipe."""
    res = {"config": {"recipes": ["paper", "best"]}, "distill": {"paper": {}, "best": {}},
           "probes": {"FP32": {"linear": 0.9012, "knn": 0.88}, "ternary RTN": {"linear": 0.7, "knn": 0.6},
                      "ternary paper": {"linear": 0.8851, "knn": 0.86}, "ternary best": {"linear": 0.8790, "knn": 0.87},
                      "pixels": {"linear": 0.84, "knn": 0.85}},
           "storage": {"FP32": _storage(1.0), "ternary best": _storage(0.0712)},
           "latency": {"1": {"ms": {}, "ratio": {"FP32": 1.0, "ternary best": 0.912}},
                       "256": {"ms": {}, "ratio": {"FP32": 1.0, "ternary best": 1.004}}}}
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "results.json").write_text(json.dumps(res))
    rows = {r["key"]: r for r in report.summary_table(tmp_path)}
    probe = rows["image-probe"]
    assert [f["text"] for f in probe["ours"]["figures"]] == ["90.12", "88.51", "1.61"]  # recipe "paper" wins
    assert "recipe: paper" in probe["note"]
    assert report.render_cell(probe["ours"], link=False) == "90.12 → 88.51 (1.61 points lost)"
    assert report.render_cell(rows["image-storage"]["ours"], link=False) == "0.071x"
    assert report.render_cell(rows["image-latency"]["ours"], link=False) == "1 image 0.91x, 256 images 1.00x"
    assert rows["text-headline"]["ours"]["template"] == report.NOT_RUN  # the other rows are not yet run

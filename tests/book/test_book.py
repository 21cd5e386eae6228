"""The book: config sanity, stored outputs from full runs, a -W build that must pass, and the built
site checked in a headless browser (tools/check_site.py) on that same build."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
import check_site  # noqa: E402


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
    """The first cell is the hidden Colab install cell (see test_colab_install_cell); a `parameters` cell;
    stored outputs of one complete run, without errors or stderr, with at least three figures."""
    nb = json.loads(nb_path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    first = cells[0]
    assert first["cell_type"] == "code" and "remove-cell" in first["metadata"].get("tags", [])
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


def test_colab_install_cell():
    """Every chapter's first cell is the same Colab install cell: in Colab only, a shallow clone of the
    repository of _config.yml (the one place the URL lives: when it changes, edit the chapters' .md to match;
    TERNLIB_REPO overrides it, as tests/book/test_colab.py does), `pip install` of the clone with the light
    `colab` extra, and the clone's stored runs (book/artifacts) and root (experiments/) made visible."""
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    cells = {nb.name: "".join(json.loads(nb.read_text())["cells"][0]["source"]) for nb in NOTEBOOKS}
    src = cells[NOTEBOOKS[0].name]
    differ = [n for n, c in cells.items() if c != src]
    assert not differ, f"first cells differ from {NOTEBOOKS[0].name}'s: {differ}"
    assert 'if "google.colab" in sys.modules:' in src
    assert f'REPO = os.environ.get("TERNLIB_REPO", "{url}")' in src
    assert re.findall(r"https?://[^\s\"']+", src) == [url], "the cell names another URL than _config.yml's"
    assert "!git clone -q --depth 1 {REPO} ternlib-src" in src
    assert '%pip install -q "./ternlib-src[colab]"' in src
    assert 'os.environ["TERNLIB_ARTIFACTS"] = os.path.abspath("ternlib-src/book/artifacts")' in src
    assert 'sys.path.append(os.path.abspath("ternlib-src"))' in src  # after site-packages: ternlib is the installed one


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_badge(nb_path):
    """The title is followed by an "Open in Colab" badge for this notebook, on the repository of _config.yml."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    slug = repo["url"].rstrip("/").removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{slug}/blob/{repo.get('branch', 'main')}/book/{nb_path.name}"
    title = next(c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "markdown")
    lines = "".join(title["source"]).split("\n")
    assert lines[0].startswith("# ")
    badge = next((line for line in lines[1:4] if line.strip()), "")
    assert re.fullmatch(r"\[!\[Open in Colab\]\(data:image/png;base64,[A-Za-z0-9+/=]+\)\]\((.+)\)", badge), badge[:120]
    assert badge.endswith(f"({url})"), f"badge links elsewhere than {url}"


def test_figures_have_captions():
    """Every cell that draws a figure has a myst-nb caption and a unique label, and notebook readers get
    the same caption as the hidden markdown cell right after it. In a chapter's .md (the source, see
    test_pairing.py) the caption and label are the `mystnb: figure:` metadata at the top of the
    {code-cell}, and the hidden cell follows under `+++ {"tags": ["remove-cell"]}`."""
    names = []
    for nb_path in NOTEBOOKS:
        cells = json.loads(nb_path.read_text())["cells"]
        for i, c in enumerate(cells):
            if c["cell_type"] != "code" or not any("image/png" in o.get("data", {}) for o in c.get("outputs", [])):
                continue
            where = f"{nb_path.name} cell {i}"
            fig = c["metadata"].get("mystnb", {}).get("figure", {})
            assert fig.get("caption", "").startswith("**Figure ") and fig.get("name", "").startswith("fig-"), where
            # myst-nb wraps every display output of the cell in the figure: one image, nothing else
            shown = [o for o in c["outputs"] if o["output_type"] in ("display_data", "execute_result")]
            assert len(shown) == 1, f"{where}: a figure cell must display only its figure"
            nxt = cells[i + 1]
            assert nxt["cell_type"] == "markdown" and "remove-cell" in nxt["metadata"].get("tags", []), where
            assert "".join(nxt["source"]) == fig["caption"], f"{where}: hidden caption differs from the metadata"
            names.append(fig["name"])
    assert len(names) == len(set(names)), "figure names must be unique across the book"


def test_site_scripts_are_bundled():
    """The book's JavaScript comes from book/_static (tools/setup.sh bundles it from npm), never from a CDN:
    MathJax, and require.js + the widget manager for the pages with widgets (replacing myst-nb's CDN URLs)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    scripts = [config["mathjax_path"], *config["nb_ipywidgets_js"]]
    assert any("require" in s for s in scripts) and any("html-manager/embed-amd.js" in s for s in scripts)
    for src in scripts:
        assert not check_site.OFF_SITE.match(src), f"{src}: from off the site"
        assert not src.startswith("_static/"), f"{src}: relative to html_static_path already (no _static/)"
    for attrs in config["nb_ipywidgets_js"].values():
        assert "crossorigin" not in attrs, "crossorigin blocks the script on a page opened from a file"
    missing = [s for s in scripts if not (ROOT / "book" / "_static" / s).exists()]
    if missing:
        pytest.skip(f"not bundled yet: {missing}; run bash tools/setup.sh")


def test_remote_resources():
    """check_site's scan of a page's HTML: scripts and stylesheets from absolute or protocol-relative URLs."""
    page = ('<script src="../_static/require.js"></script><script>var x = "https://example.org/";</script>'
            '<link rel="stylesheet" href="_static/a.css"><link rel="canonical" href="https://example.org/">'
            '<a href="https://example.org/">a link is not a load</a>')
    assert check_site.remote_resources(page) == []
    cdn = ('<script src="https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/dist/embed-amd.js"></script>'
           '<script src="//cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js"></script>'
           '<link rel="stylesheet" href="HTTP://example.org/a.css"><link rel="preload" href="https://example.org/f.woff2">')
    assert check_site.remote_resources(page + cdn) == [
        "script https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/dist/embed-amd.js",
        "script //cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js",
        "stylesheet HTTP://example.org/a.css", "preload https://example.org/f.woff2"]


def test_network_problems():
    """check_site's reading of Chromium's network log: other hosts and failed files of the site are problems."""
    origin = "http://127.0.0.1:8000/"
    sent = lambda url: {"method": "Network.requestWillBeSent", "params": {"request": {"url": url}}}
    got = lambda url, status: {"method": "Network.responseReceived",
                               "params": {"response": {"url": url, "status": status}}}
    ok = [sent(origin + "book/a.html"), got(origin + "book/a.html", 200), sent("data:image/png;base64,AA"),
          sent(origin + "favicon.ico"), got(origin + "favicon.ico", 404)]
    assert check_site.network_problems(ok, origin) == ([], 2)  # http(s) requests only
    bad = ok + [sent("https://unpkg.com/x.js"), sent("https://unpkg.com/x.js"), got(origin + "_static/x.js", 404),
                {"method": "Network.webSocketCreated", "params": {"url": "wss://example.org/ws"}}]
    problems, _ = check_site.network_problems(bad, origin)
    assert len(problems) == 3, problems
    assert "https://unpkg.com/x.js" in problems[0] and "wss://example.org/ws" in problems[1]
    assert "/_static/x.js" in problems[2]


def _browser_or_skip():
    browser = check_site.find_browser()
    if isinstance(browser, str):
        if os.geteuid() != 0:  # CI runs tools/setup.sh as root, which installs Chromium
            pytest.skip(f"no Chromium; to run this check: sudo apt-get install chromium chromium-driver ({browser})")
        pytest.fail(browser)


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """One -W build of the book for the tests below (module scope: the book is built once)."""
    out_dir = tmp_path_factory.mktemp("book")
    exe = Path(sys.executable).parent / "jupyter-book"
    out = subprocess.run([str(exe), "build", str(ROOT), "--path-output", str(out_dir), "-W", "-n", "--keep-going"],
                         capture_output=True, text=True, timeout=900)
    return out, out_dir / "_build" / "html"


@pytest.mark.slow
@pytest.mark.xdist_group("book")
def test_book_builds_without_warnings(built_book):
    out, html = built_book
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
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
    for page in check_site.pages_of(html):  # self-contained: no script or stylesheet from a CDN
        assert check_site.remote_resources(page.read_text()) == [], page.relative_to(html)


@pytest.mark.slow
@pytest.mark.xdist_group("book")
def test_site_renders_offline(built_book):
    """tools/check_site.py on the same build: images, internal links, cell errors, empty pages, math, widgets,
    and nothing loaded from off the site."""
    out, html = built_book
    assert out.returncode == 0, "the book did not build (see test_book_builds_without_warnings)"
    _browser_or_skip()
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "check_site.py"), str(html)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    for chapter in ("01_fp32_to_ternary", "06_ann_search"):  # the pages with stored widgets render them
        assert re.search(rf"ok   book/{chapter}\.html: .*note: 1 widget\(s\) rendered", res.stdout), res.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("book")
def test_site_check_catches_remote_loads(built_book, tmp_path):
    """The offline check can fail: on a copy of the built site whose chapter 6 loads a CDN script, an off-site
    stylesheet and an off-site fetch(), declares a missing font and an off-site one, and whose bundled widget
    manager is gone, it reports each of them."""
    out, html = built_book
    assert out.returncode == 0, "the book did not build (see test_book_builds_without_warnings)"
    _browser_or_skip()
    site = tmp_path / "html"
    shutil.copytree(html, site)
    (site / "_static" / "html-manager" / "embed-amd.js").unlink()
    page = site / "book" / "06_ann_search.html"
    cdn = "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/dist/embed-amd.js"
    page.write_text(page.read_text().replace("</head>", f'<script src="{cdn}"></script>'
                                             '<link rel="stylesheet" href="//fonts.example.org/css">'
                                             '<script>fetch("https://example.org/data.json").catch(() => null)</script>'
                                             "<style>@font-face {font-family: a; src: url(../_static/gone.woff2)}"
                                             "@font-face {font-family: b; src: url(https://fonts.example.org/b.woff)}"
                                             "</style>"
                                             "</head>", 1))
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "check_site.py"), str(site), "--page", "book/06_*.html"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout[-6000:] + res.stderr[-3000:]
    for expected in (f"its HTML loads a script {cdn}", "its HTML loads a stylesheet //fonts.example.org/css",
                     f"requests {cdn}", "requests https://example.org/data.json",  # the last one only the browser sees
                     "a file of the site failed to load: /_static/html-manager/embed-amd.js",
                     "1 of 1 widget(s) did not render",
                     # fonts no text on the page uses, so the browser never asks for them: only the font check sees
                     "a stylesheet declares a font that does not load: /_static/gone.woff2 (HTTP 404)",
                     "a stylesheet declares a font off the site: https://fonts.example.org/b.woff"):
        assert f"FAIL book/06_ann_search.html: {expected}" in res.stdout, (expected, res.stdout[-6000:])


@pytest.mark.parametrize("page", sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.name)
def test_no_work_tracker_words(page):
    """The book speaks to readers: no chapter mentions the project's work items ("the issue's target")."""
    hits = [line.strip() for line in page.read_text().splitlines() if re.search(r"\bissues?\b", line, re.I)]
    assert not hits, f"{page.name}: " + " | ".join(hits[:3])


@pytest.mark.parametrize("nb_path", [p for p in NOTEBOOKS if p.stem[:2].isdigit()], ids=lambda p: p.name)
def test_every_exercise_has_a_solution_and_a_self_check(nb_path):
    """Every numbered exercise is followed by a worked solution (a dropdown), and the chapter ends with
    self-check questions, each with its answer."""
    text = (ROOT / "book" / f"{nb_path.stem}.md").read_text()
    assert "## Exercises" in text and "## Self-check" in text, nb_path.stem
    exercises = text.split("## Exercises", 1)[1].split("## Self-check", 1)[0]
    # exercises are numbered items (inside the section's text, not inside a solution); a solution is a dropdown,
    # right after its exercise or after the list
    outside = re.sub(r"`{3,}\{admonition\}.*?\n`{3,}\s*\n", "", exercises, flags=re.S)
    numbered = re.findall(r"^\d+\. ", outside, flags=re.M)
    assert numbered, f"{nb_path.stem}: no numbered exercises"
    solutions = len(re.findall(r":class: dropdown", exercises))
    assert solutions >= len(numbered), f"{nb_path.stem}: {len(numbered)} exercises but {solutions} solutions"
    checks = re.split(r"\n(?=\d+\. )", "\n" + text.split("## Self-check", 1)[1])[1:]
    assert len(checks) >= 3, f"{nb_path.stem}: fewer than 3 self-check questions"
    for block in checks:
        assert ":class: dropdown" in block, f"{nb_path.stem}: self-check question without an answer: {block[:80]!r}"

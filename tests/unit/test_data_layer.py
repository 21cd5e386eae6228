"""The data layer (ternlib.data.assets): the resolution order, the one clear error, and every download
path run for real against a local mirror served on localhost (tests/mirror.py): fetch, verify, unpack, use."""
import dataclasses
import hashlib
import tarfile

import pytest

from ternlib.cli import main
from ternlib.data import assets
from ternlib.data import text as D
from ternlib.data.assets import DataNotFoundError, locate

mirror_mod = pytest.importorskip("tests.mirror")


@pytest.fixture()
def bare(tmp_path, monkeypatch):
    """No system data, an empty HOME and user cache, no asset variables: a machine with nothing on it."""
    for a in assets.ASSETS.values():
        monkeypatch.delenv(a.env, raising=False)
    monkeypatch.setenv("TERNLIB_SYSTEM_PREFIXES", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TERNLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    # hide the installed gensim package
    monkeypatch.setitem(assets.ASSETS, "gensim", dataclasses.replace(assets.ASSETS["gensim"], extra=lambda: []))
    for name in ("TERNLIB_NLTK_INDEX", "TERNLIB_GENSIM_DATA_URL", "TERNLIB_REPO_ARCHIVE", "TERNLIB_TORCHVISION_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture()
def nltk_mirror(monkeypatch, mirror):
    pytest.importorskip("nltk")
    mirror_mod.allow_loopback_in_nltk(monkeypatch)
    monkeypatch.setenv("TERNLIB_NLTK_INDEX", mirror.url("nltk/index.xml"))
    return mirror


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    with mirror_mod.Mirror(tmp_path_factory.mktemp("mirror")) as m:
        yield m


def test_order_root_env_system_cache(bare, monkeypatch):
    with pytest.raises(DataNotFoundError) as e:
        locate("wordnet", download=False)
    msg = str(e.value)
    assert "WordNet 3.0" in msg and "ternlib data fetch wordnet" in msg and "TERNLIB_WORDNET_DIR" in msg
    assert "downloads are off" in msg
    prefix = bare / "usr-share"
    (prefix / "wordnet").mkdir(parents=True)
    for pos in D.WORDNET_POS:
        (prefix / "wordnet" / f"data.{pos}").write_text("")
    monkeypatch.setenv("TERNLIB_SYSTEM_PREFIXES", str(prefix))
    assert locate("wordnet") == prefix / "wordnet"  # the system package
    cached = bare / "cache" / "nltk_data" / "corpora" / "wordnet"
    cached.mkdir(parents=True)
    for pos in D.WORDNET_POS:
        (cached / f"data.{pos}").write_text("")
    assert locate("wordnet") == prefix / "wordnet"  # system before cache
    monkeypatch.setenv("TERNLIB_SYSTEM_PREFIXES", "")
    assert locate("wordnet") == cached
    monkeypatch.setenv("TERNLIB_WORDNET_DIR", str(bare / "nowhere"))  # a place you name must hold it
    with pytest.raises(DataNotFoundError, match="TERNLIB_WORDNET_DIR; missing data.noun"):
        locate("wordnet")
    with pytest.raises(ValueError, match="unknown data asset 'imagenet'"):
        locate("imagenet")


def test_failed_download_says_what_and_how(bare, monkeypatch):
    monkeypatch.setenv("TERNLIB_NLTK_INDEX", "http://127.0.0.1:9/index.xml")  # nothing listens there
    with pytest.raises(DataNotFoundError) as e:
        D.load_wordnet()
    msg = str(e.value)
    assert "WordNet 3.0" in msg and "the download failed" in msg and "ternlib data fetch wordnet" in msg


def test_wordnet_and_brown_through_nltk(bare, nltk_mirror):
    wn = locate("wordnet")
    assert wn == bare / "cache" / "nltk_data" / "corpora" / "wordnet"
    assert len(D.load_wordnet(wn)) == 117_659  # the whole database, unpacked from NLTK's zip
    brown = D.brown_dir()
    assert brown == bare / "cache" / "nltk_data" / "corpora" / "brown"
    from ternlib.data.corpus import brown_documents

    assert len(brown_documents(brown)) == 500


def test_nltk_checksum_is_verified(bare, monkeypatch, nltk_mirror):
    mirror = nltk_mirror
    index = (mirror.root / "nltk" / "index.xml").read_text()
    bad = mirror.root / "nltk" / "index-bad.xml"
    good = hashlib.sha256((mirror.root / "nltk/packages/corpora/wordnet.zip").read_bytes()).hexdigest()
    bad.write_text(index.replace(good, "0" * 64))
    monkeypatch.setenv("TERNLIB_NLTK_INDEX", mirror.url("nltk/index-bad.xml"))
    with pytest.raises(DataNotFoundError, match="download failed.*sha256 mismatch"):
        locate("wordnet")


def test_gensim_sets_through_pooch(bare, monkeypatch, mirror):
    monkeypatch.setenv("TERNLIB_GENSIM_DATA_URL", mirror.url("gensim/test_data/"))
    assert D.gensim_data_dir() == bare / "cache" / "gensim-test-data"
    assert len(D.lee_sts()) == 1225 and len(D.polarity()) == 200


def test_gensim_corrupt_download_is_refused(bare, monkeypatch, mirror, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for name in assets.GENSIM_FILES:
        (served / name).write_bytes((mirror.root / "gensim" / "test_data" / name).read_bytes())
    (served / "lee.cor").write_text("tampered")
    link = mirror.root / "gensim-bad"
    if not link.exists():
        link.symlink_to(served, target_is_directory=True)
    monkeypatch.setenv("TERNLIB_GENSIM_DATA_URL", mirror.url("gensim-bad/"))
    with pytest.raises(DataNotFoundError, match="download failed"):
        D.gensim_data_dir()


def test_fashion_mnist_through_torchvision(bare, monkeypatch, mirror):
    tv = pytest.importorskip("torchvision.datasets")
    from ternlib.vision.images import load_fashion_mnist

    # the mirror serves Debian's copies, recompressed: torchvision checks them against their own md5
    md5 = {name: hashlib.md5((mirror.root / "fashion-mnist" / name).read_bytes()).hexdigest()
           for name, _ in tv.FashionMNIST.resources}
    monkeypatch.setattr(tv.FashionMNIST, "resources", [(n, md5[n]) for n, _ in tv.FashionMNIST.resources])
    monkeypatch.setenv("TERNLIB_TORCHVISION_MIRROR", mirror.url("fashion-mnist/"))
    test = load_fashion_mnist("test")
    assert test.images.shape == (10_000, 1, 28, 28)
    assert locate("fashion-mnist") == bare / "cache" / "FashionMNIST" / "raw"


def test_stored_runs_from_the_repository_archive(bare, monkeypatch, mirror):
    monkeypatch.setenv("TERNLIB_REPO_ARCHIVE", mirror.url("ternlib-main.tar.gz"))
    art = locate("artifacts")
    assert art == bare / "cache" / "artifacts" and (art / "text" / "fp32.json").is_file()
    with tarfile.open(mirror.root / "ternlib-main.tar.gz") as tar:
        assert (art / "text" / "fp32.json").read_bytes() == tar.extractfile(
            "ternlib-main/book/artifacts/text/fp32.json").read()
    assert not (art.parent / "README.md").exists()  # only book/artifacts is kept


def test_data_command(bare, monkeypatch, mirror, capsys):
    monkeypatch.setenv("TERNLIB_GENSIM_DATA_URL", mirror.url("gensim/test_data/"))
    assert main(["data", "list"]) == 0
    assert "gensim" in capsys.readouterr().out
    assert main(["data", "fetch", "gensim"]) == 0
    assert "gensim-test-data" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown imagenet"):
        main(["data", "fetch", "imagenet"])

"""ternlib.ann: presets, guard rails, save/load, evaluation helpers and the ``ann`` command (small data)."""
import json

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from ternlib import ann  # noqa: E402
from ternlib.ann import AnnError, build_index, load_index, normalize  # noqa: E402
from ternlib.data.text import RetrievalData  # noqa: E402
from ternlib.evaluation.metrics import ranking_metrics  # noqa: E402

D = 32


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, D))
    x = normalize(centers[rng.integers(0, 20, 2000)] + 0.5 * rng.standard_normal((2000, D)))  # (2000, D)
    q = normalize(x[:100] + 0.1 * rng.standard_normal((100, D)))  # (100, D), near their own row
    return x, q


def exact(x, q, k):
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("name", list(ann.PRESETS))
def test_every_preset_builds_and_finds_neighbours(data, name):
    x, q = data
    index = build_index(x, name)
    assert index.ntotal == len(x) and index.d == D and index.build_seconds > 0
    scores, ids = index.search(q, k=10)
    assert scores.shape == ids.shape == (len(q), 10)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    recall = ann.neighbour_recall(ids, exact(x, q, 10), 10)
    floor = {"Flat": 1.0, "HNSW": 0.95, "IVF-Flat": 0.8, "IVF-PQ+refine": 0.8, "SQ8": 0.9,
             "Binary+rescore": 0.3, "Binary+float-rescore": 0.5, "LSH": 0.3}[name]
    assert recall >= floor, (name, recall)


def test_flat_is_exact_and_scores_are_cosines(data):
    x, q = data
    scores, ids = build_index(x, "Flat").search(q, 5)
    np.testing.assert_array_equal(ids, exact(x, q, 5))
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, ids, 1), atol=1e-5)


def test_memory_ordering(data):
    x, _ = data
    size = {n: build_index(x, n).nbytes for n in ("Flat", "SQ8", "Binary+rescore", "IVF-PQ+refine")}
    assert abs(size["Flat"] / (len(x) * D * 4) - 1) < 0.01
    assert size["SQ8"] < size["Flat"] / 3.5
    assert size["Binary+rescore"] < size["Flat"] / 30  # 1 bit vs 32 bits a dimension
    assert size["IVF-PQ+refine"] > size["Flat"]  # the refinement keeps the exact vectors too


def test_factory_strings(data):
    x, q = data
    ix = build_index(x, "IVF16,Flat", search_params="nprobe=16")
    assert ix.factory == "IVF16,Flat" and faiss.extract_index_ivf(ix.index).nprobe == 16
    np.testing.assert_array_equal(ix.search(q, 5)[1], exact(x, q, 5))  # every cell probed: exact
    assert build_index(x, "BHNSW16").binary
    with pytest.raises(AnnError, match="FAISS cannot build"):
        build_index(x, "NoSuchIndex42")
    with pytest.raises(AnnError, match="cannot set"):
        build_index(x, "Flat", search_params="nprobe=3")


def test_set_search_params(data):
    """Search parameters change in place, without a rebuild: an IVF index probed everywhere is exact."""
    x, q = data
    ix = build_index(x, "IVF16,Flat", search_params="nprobe=1")
    assert faiss.extract_index_ivf(ix.index).nprobe == 1
    assert ix.set_search_params("nprobe=16") is ix and ix.search_params == "nprobe=16"
    assert faiss.extract_index_ivf(ix.index).nprobe == 16
    np.testing.assert_array_equal(ix.search(q, 5)[1], exact(x, q, 5))
    hnsw = build_index(x, "HNSW").set_search_params("efSearch=200")
    assert faiss.downcast_index(hnsw.index).hnsw.efSearch == 200
    with pytest.raises(AnnError, match="cannot set"):
        build_index(x, "Flat").set_search_params("efSearch=3")


def test_guard_rails(data):
    x, q = data
    index = build_index(x, "HNSW")
    with pytest.raises(AnnError, match="dimension mismatch"):
        index.search(normalize(np.ones((2, D + 1))), 3)
    with pytest.raises(AnnError, match="dimension mismatch"):
        index.add(normalize(np.ones((2, 8))))
    with pytest.raises(AnnError, match="unit-norm"):
        index.search(q * 3, 3)
    with pytest.raises(AnnError, match="unit-norm"):
        build_index(x * 2, "Flat")
    s1, i1 = index.search(q * 3, 3, normalize=True)  # documented: normalize=True fixes the norm
    np.testing.assert_array_equal(i1, index.search(q, 3)[1])
    with pytest.raises(AnnError, match="larger than the 2000 vectors"):
        index.search(q, 2001)
    with pytest.raises(AnnError, match="positive int"):
        index.search(q, 0)
    with pytest.raises(AnnError, match="nan"):
        index.search(np.full((1, D), np.nan), 1)
    with pytest.raises(AnnError, match="2-d"):
        index.search(np.ones((1, 2, D)), 1)
    with pytest.raises(AnnError, match="zero vector"):
        normalize(np.zeros((1, D)))
    with pytest.raises(AnnError, match="0 vectors"):
        build_index(np.zeros((0, D), np.float32), "Flat")
    with pytest.raises(AnnError, match="unknown index"):
        build_index(x, "")


def test_one_dimensional_query_is_one_row(data):
    x, q = data
    scores, ids = build_index(x, "Flat").search(q[0], 3)
    assert ids.shape == (1, 3)


def test_empty_and_untrained(data):
    x, q = data
    empty = ann.AnnIndex(faiss.IndexFlatIP(D), "Flat", "Flat", D)
    with pytest.raises(AnnError, match="empty"):
        empty.search(q, 1)
    raw = faiss.index_factory(D, "IVF16,Flat", faiss.METRIC_INNER_PRODUCT)
    untrained = ann.AnnIndex(raw, "IVF-Flat", "IVF16,Flat", D)
    with pytest.raises(AnnError, match="not trained"):
        untrained.add(x)
    with pytest.raises(AnnError, match="empty"):
        untrained.search(q, 1)
    with pytest.raises(AnnError, match="at least 256 training vectors"):
        build_index(x[:100], "IVF256,Flat")


def test_k_equal_to_ntotal_and_unfilled_slots(data):
    x, q = data
    small = build_index(x[:12], "Flat")
    scores, ids = small.search(q, 12)
    assert sorted(ids[0].tolist()) == list(range(12))
    ivf = build_index(x, "IVF16,Flat", search_params="nprobe=1")
    scores, ids = ivf.search(q, 1000)  # one cell holds fewer than 1000 vectors: documented -1 / -inf
    assert (ids == -1).any() and np.isneginf(scores[ids == -1]).all()


def test_lsh_is_the_papers_index(data, tmp_path):
    """The LSH preset is faiss.IndexLSH(d, 128) (random rotation, 128 sign bits, Hamming search),
    as the paper built it, with cosine-like scores; it saves and loads like every index."""
    x, q = data
    d = 64
    rng = np.random.default_rng(3)
    x2 = normalize(np.repeat(x, 2, axis=1) + 0.1 * rng.standard_normal((len(x), d)))  # (2000, 64)
    q2 = normalize(np.repeat(q, 2, axis=1))  # (100, 64)
    index = build_index(x2, "LSH")
    assert index.lsh_bits == 128 and index.factory == "LSH128r" and not index.binary
    paper = faiss.IndexLSH(d, 128)  # the paper's call: rotate_data defaults to True
    assert paper.rotate_data and not paper.train_thresholds
    paper.add(x2)
    hamming, paper_ids = paper.search(q2, 10)
    scores, ids = index.search(q2, 10)
    np.testing.assert_array_equal(ids, paper_ids)  # the same index, the same answers
    np.testing.assert_allclose(scores, np.cos(np.pi * hamming / 128), atol=1e-6)  # higher is better
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    codes = faiss.downcast_index(index.index).code_size
    assert codes == 16  # 128 bits a vector, whatever d
    rotation = d * 128 * 4  # the random rotation matrix, stored once
    assert len(x2) * codes <= index.nbytes <= len(x2) * codes + rotation + 4096
    assert ann.neighbour_recall(ids, exact(x2, q2, 10), 10) >= 0.3
    assert "LSH" in ann.PRESETS and "LSH" not in ann.DEFAULT_PRESETS  # the stored benchmark's seven
    back = load_index(index.save(tmp_path / "lsh.faiss"))
    assert back.lsh_bits == 128
    for a, b in zip(index.search(q2, 10), back.search(q2, 10)):
        np.testing.assert_array_equal(a, b)
    raw = faiss.IndexLSH(d, 64)  # a bare FAISS file of another size loads too (an L2-metric index)
    raw.add(x2)
    faiss.write_index(raw, str(tmp_path / "raw.faiss"))
    assert load_index(tmp_path / "raw.faiss").lsh_bits == 64


def test_hnsw_links_per_node(data):
    """FAISS's HNSW32: R = M = 32, 2R = 64 neighbour slots on the bottom layer, R on each upper one."""
    x, _ = data
    index = build_index(x, "HNSW")  # keep it alive: .hnsw is a view into it
    hnsw = faiss.downcast_index(index.index).hnsw
    assert [hnsw.nb_neighbors(level) for level in range(3)] == [64, 32, 32]
    levels = faiss.vector_to_array(hnsw.levels)  # 1 = bottom layer only
    slots = faiss.vector_to_array(hnsw.neighbors).size
    assert slots == sum(64 + 32 * (lv - 1) for lv in levels)


def test_precision_at_k():
    ids = np.array([[3, 1, -1], [0, 2, 5], [9, 8, 7]])
    assert ann.precision_at_k(ids, [(1,), (2, 5), (4,)], k=3) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    # one relevant document a query: precision@k = recall@k / k
    rng = np.random.default_rng(2)
    ids = np.stack([rng.permutation(50)[:10] for _ in range(30)])
    relevant = [(int(rng.integers(50)),) for _ in range(30)]
    m = ann.task_metrics(ids, relevant)
    assert m["precision@10"] == pytest.approx(m["recall@10"] / 10)
    with pytest.raises(AnnError, match="relevance lists"):
        ann.precision_at_k(ids, relevant[:3])
    with pytest.raises(AnnError, match="result columns"):
        ann.precision_at_k(ids[:, :5], relevant, k=10)


@pytest.mark.parametrize("name", ["Flat", "HNSW", "IVF-PQ+refine", "Binary+rescore", "Binary+float-rescore", "LSH"])
def test_save_load_round_trip(data, tmp_path, name):
    x, q = data
    index = build_index(x, name)
    path = index.save(tmp_path / f"{name}.faiss")
    back = load_index(path)
    assert (back.name, back.factory, back.d, back.ntotal, back.search_params) == \
        (index.name, index.factory, index.d, index.ntotal, index.search_params)
    for a, b in zip(index.search(q, 10), back.search(q, 10)):
        np.testing.assert_array_equal(a, b)
    # FAISS's own reader opens the file
    raw = (faiss.read_index_binary if index.binary else faiss.read_index)(str(path))
    assert raw.ntotal == len(x)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_index(tmp_path / "missing.faiss")
    (tmp_path / "junk.faiss").write_bytes(b"not an index")
    with pytest.raises(AnnError, match="not a FAISS"):
        load_index(tmp_path / "junk.faiss")
    l2 = faiss.IndexFlatL2(4)
    faiss.write_index(l2, str(tmp_path / "l2.faiss"))
    with pytest.raises(AnnError, match="metric"):
        load_index(tmp_path / "l2.faiss")


def test_sign_bits():
    x = np.array([[1, -1, 0.5, -0.2, 0, 3, -3, 1] * 2], dtype=np.float32)
    assert ann.sign_bits(x).tolist() == [[0b10100101, 0b10100101]]
    with pytest.raises(AnnError, match="divisible by 8"):
        ann.sign_bits(np.ones((1, 12)))


def test_task_metrics_match_ranking_metrics():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((40, 300))
    relevant = [tuple(rng.choice(300, rng.integers(1, 4), replace=False)) for _ in range(40)]
    ids = np.argsort(-scores, axis=1)[:, :10]
    got, want = ann.task_metrics(ids, relevant, chunk=7), ranking_metrics(scores, relevant)
    for name in want:
        assert got[name] == pytest.approx(want[name])
    # an unfilled slot (-1) never counts, and a relevant document not retrieved never fills it
    one = ann.task_metrics(np.array([[5, -1, -1, -1, -1, -1, -1, -1, -1, -1]]), [(7,)])
    assert one["recall@10"] == 0.0 and one["ndcg@10"] == 0.0
    two = ann.task_metrics(np.array([[5, 7] + [-1] * 8]), [(7,)])
    assert two["mrr@10"] == 0.5 and two["recall@1"] == 0.0


def test_neighbour_recall():
    a = np.array([[1, 2, 3], [4, 5, -1]])
    b = np.array([[3, 2, 9], [4, 5, 6]])
    assert ann.neighbour_recall(a, b, 3) == pytest.approx((2 / 3 + 2 / 3) / 2)


class FakeEncoder:
    """Bag-of-words hashing encoder: deterministic, fast, and good enough to rank a tiny corpus."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.table = {}

    def encode(self, texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False):
        out = np.zeros((len(texts), D), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                if w not in self.table:
                    self.table[w] = np.random.default_rng(abs(hash(w)) % 2**32).standard_normal(D)
                out[i] += self.table[w]
            out[i] += 1e-3 * self.rng.standard_normal(D)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def tiny_corpus(n_docs=400, n_queries=40):
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    docs = [" ".join(rng.choice(vocab, 6)) for _ in range(n_docs)]
    queries = [" ".join(docs[j].split()[:3]) for j in range(n_queries)]
    return RetrievalData(queries, docs, [(j,) for j in range(n_queries)])


def test_embed_caches(tmp_path):
    enc = ann.Encoder("fake", "fake-key", FakeEncoder(0))
    texts = tiny_corpus().documents[:50]
    a = ann.embed(enc, texts, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("fake-key-*.npy"))
    assert len(files) == 1 and a.shape == (50, D)
    enc.model = None  # a second call must not encode
    np.testing.assert_array_equal(ann.embed(enc, texts, cache_dir=tmp_path, progress=False), a)
    with pytest.raises(AnnError, match="nothing"):
        ann.embed(enc, [], cache_dir=tmp_path)


def test_benchmark_and_table(tmp_path):
    data = tiny_corpus()
    encs = [ann.Encoder("FP32", "fp32-fake", FakeEncoder(0)), ann.Encoder("ternary", "tern-fake", FakeEncoder(1))]
    res = ann.benchmark(encs, data, indexes=["HNSW", "Binary+rescore"], cache_dir=tmp_path, batch1_queries=5,
                        latency_queries=3, repeats=2, latency_repeats=3, progress=False)
    rows = {(r["encoder"], r["index"]): r for r in res["rows"]}
    assert set(rows) == {(e, i) for e in ("FP32", "ternary") for i in ("Flat", "HNSW", "Binary+rescore")}
    assert rows["FP32", "Flat"]["recall@k vs exact"] == 1.0 == rows["FP32", "Flat"]["recall@k vs FP32 exact"]
    assert rows["FP32", "Flat"]["e2e vs FP32+Flat"] == 1.0
    assert rows["FP32", "Flat"]["ndcg@10"] > 0.5
    for r in rows.values():
        assert r["qps batch 1"] > 0 and r["index bytes"] > 0 and r["e2e ms"] > 0
    json.dumps(res)
    text = ann.table(res)
    assert "| ternary | HNSW |" in text and "nDCG@10" in text
    with pytest.raises(AnnError, match="unknown index"):
        ann.benchmark(encs, data, indexes=["Nope"])


def test_cli_on_a_tiny_sample(tmp_path, monkeypatch, capsys):
    from ternlib.cli import main

    monkeypatch.setattr(ann, "load_corpus", lambda n_queries=None, n_docs=None, seed=0: tiny_corpus())
    monkeypatch.setattr(ann, "load_encoder", lambda spec="fp32", activations="int8": ann.Encoder(
        "FP32" if spec == "fp32" else "ternary", f"{spec}-fake".replace("/", "_"), FakeEncoder(len(spec))))
    monkeypatch.setattr(ann, "benchmark", _quick(ann.benchmark))
    out = tmp_path / "res.json"
    assert main(["ann", "--encoder", "fp32", "some/ckpt", "--indexes", "Flat", "HNSW", "--sample", "40",
                 "--cache-dir", str(tmp_path), "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| ternary | HNSW |" in printed and "latency reference" in printed
    res = json.loads(out.read_text())
    assert len(res["rows"]) == 4 and res["command"].startswith("python -m ternlib ann --encoder fp32")
    with pytest.raises(SystemExit, match="unknown"):
        main(["ann", "--indexes", "Annoy"])


def _quick(fn):
    def run(*args, **kw):
        return fn(*args, **{**kw, "batch1_queries": 3, "latency_queries": 2, "repeats": 2, "latency_repeats": 3})
    return run


def test_cli_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ternlib", "ann", "--help"], capture_output=True, text=True, check=True)
    assert "--encoder" in out.stdout and "HNSW" in out.stdout


def test_missing_faiss_message(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_faiss(name, *a, **k):
        if name == "faiss":
            raise ImportError("no faiss")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        ann.build_index(np.eye(8, dtype=np.float32), "Flat")

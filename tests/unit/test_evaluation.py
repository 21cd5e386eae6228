"""ternlib.evaluation: metrics against hand-computed values, the WordNet parser, the loaders'
sizes, bad input, reporting, and one small fast-mode run of MiniLM."""
import math
import zlib

import numpy as np
import pytest

from ternlib.data import text as D
from ternlib.evaluation import (
    TASKS,
    evaluate,
    load_results,
    logreg_accuracy,
    ranking_metrics,
    results_table,
    save_results,
    spearman,
    train_test_indices,
)
from ternlib.evaluation.metrics import top_k

LOG2_3 = math.log2(3)


# --------------------------------------------------------------------------------------------
# ranking metrics


def one_query(rank_of_relevant: int, n_docs: int = 12) -> np.ndarray:
    """Scores for one query where document 0 lands at 1-based ``rank_of_relevant``."""
    scores = np.linspace(1.0, 0.0, n_docs)  # doc i has the (i+1)-th best score
    order = list(range(1, n_docs))
    order.insert(rank_of_relevant - 1, 0)
    out = np.empty(n_docs)
    out[order] = scores
    return out[None, :]


@pytest.mark.parametrize("rank, ndcg, r1, r10, mrr", [
    (1, 1.0, 1.0, 1.0, 1.0),
    (2, 1 / LOG2_3, 0.0, 1.0, 0.5),
    (3, 0.5, 0.0, 1.0, 1 / 3),
    (10, 1 / math.log2(11), 0.0, 1.0, 0.1),
    (11, 0.0, 0.0, 0.0, 0.0),  # just outside the top 10: every @10 metric is 0
    (12, 0.0, 0.0, 0.0, 0.0),
])
def test_ranking_single_relevant(rank, ndcg, r1, r10, mrr):
    m = ranking_metrics(one_query(rank), [[0]])
    assert m["ndcg@10"] == pytest.approx(ndcg)
    assert m["recall@1"] == pytest.approx(r1)
    assert m["recall@10"] == pytest.approx(r10)
    assert m["mrr@10"] == pytest.approx(mrr)


def test_ranking_two_relevant_and_averaging():
    scores = np.array([[0.9, 0.8, 0.7, 0.1],   # relevant 0 and 2 at ranks 1 and 3
                       [0.1, 0.2, 0.3, 0.4]])  # relevant 0 at rank 4
    m = ranking_metrics(scores, [[0, 2], [0]], reduce=False)
    assert m["ndcg@10"][0] == pytest.approx((1 + 0.5) / (1 + 1 / LOG2_3))
    assert m["recall@1"][0] == 0.5 and m["recall@10"][0] == 1.0 and m["mrr@10"][0] == 1.0
    assert m["ndcg@10"][1] == pytest.approx(1 / math.log2(5)) and m["mrr@10"][1] == pytest.approx(0.25)
    mean = ranking_metrics(scores, [[0, 2], [0]])
    assert mean["mrr@10"] == pytest.approx(0.625)
    assert mean["recall@1"] == pytest.approx(0.25)


def test_top_k_breaks_ties_by_index():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]])
    assert top_k(scores, 3).tolist() == [[1, 0, 2]]
    assert top_k(scores, 10).tolist() == [[1, 0, 2, 3, 4]]
    # the relevant doc 3 ties with docs 0 and 2 and loses on index: rank 4
    assert ranking_metrics(scores, [[3]])["mrr@10"] == pytest.approx(0.25)


def test_ranking_bad_input():
    with pytest.raises(ValueError, match="no relevant"):
        ranking_metrics(np.zeros((1, 3)), [[]])
    with pytest.raises(ValueError, match="out of range"):
        ranking_metrics(np.zeros((1, 3)), [[3]])
    with pytest.raises(ValueError, match="relevance lists"):
        ranking_metrics(np.zeros((2, 3)), [[0]])
    with pytest.raises(ValueError, match="2-d"):
        ranking_metrics(np.zeros(3), [[0]])


# --------------------------------------------------------------------------------------------
# Spearman, classification


def test_spearman_hand_values():
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)  # 1 - 6*2/(4*15)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties get average ranks: x ranks (1.5, 1.5, 3), y ranks (1, 2, 3) -> Pearson of ranks
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 50), rng.normal(size=50)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)


def test_train_test_split_fixed_stratified_and_grouped():
    labels = np.repeat([0, 1, 2], 10)
    tr, te = train_test_indices(labels, 0.3, seed=0)
    tr2, te2 = train_test_indices(labels, 0.3, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(30))
    assert np.bincount(labels[te]).tolist() == [3, 3, 3]  # stratified
    groups = np.repeat(np.arange(10), 3)  # 10 groups of 3, labels constant in a group
    glabels = groups % 2
    tr, te = train_test_indices(glabels, 0.3, seed=1, groups=groups)
    assert not set(groups[tr]) & set(groups[te]) and len(tr) + len(te) == 30


def test_logreg_accuracy():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, (40, 4)), rng.normal(3, 1, (40, 4))])
    y = np.repeat([0, 1], 40)
    tr, te = train_test_indices(y, 0.25, seed=0)
    assert logreg_accuracy(x[tr], y[tr], x[te], y[te]) == 1.0
    assert logreg_accuracy(x[tr], y[tr], x[te], 1 - y[te]) == 0.0
    with pytest.raises(ValueError, match="2 classes"):
        logreg_accuracy(x[:5], np.zeros(5), x[:2], np.zeros(2))


# --------------------------------------------------------------------------------------------
# data


NOUN_LINE = ("02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 02083346 n 0000 | "
             'a member of the genus Canis; "the dog barked all night"  \n')
ADJ_LINE = ('00185160 00 s 01 on_tap(p) 0 001 & 00183053 a 0000 | available for immediate use; '
            '"extra personnel on tap"; "other sports and entertainment facilities are on tap"  \n')
VERB_LINE = ("00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 000 | "
             "draw air into, and expel out of the lungs  \n")


def test_parse_wordnet_lines():
    dog = D.parse_wordnet_line(NOUN_LINE, "noun")
    assert dog.id == "02084071-n" and dog.lexname == "noun.animal"
    assert dog.lemmas == ("dog", "domestic dog", "Canis familiaris")
    assert dog.definition == "a member of the genus Canis"
    assert dog.examples == ("the dog barked all night",)
    assert dog.document == "dog, domestic dog, Canis familiaris: a member of the genus Canis"
    tap = D.parse_wordnet_line(ADJ_LINE, "adj")
    assert tap.lemmas == ("on tap",) and tap.lexname == "adj.all" and len(tap.examples) == 2
    breathe = D.parse_wordnet_line(VERB_LINE, "v")
    assert breathe.lexname == "verb.body" and len(breathe.lemmas) == 4 and breathe.examples == ()
    assert D.parse_wordnet_line("  1 This software and database is being provided\n", "noun") is None
    with pytest.raises(ValueError, match="not a WordNet data line"):
        D.parse_wordnet_line("00001740 99 n 01 thing 0 000 | x\n", "noun")  # no lexname 99
    with pytest.raises(ValueError, match="part of speech"):
        D.parse_wordnet_line(NOUN_LINE, "x")
    assert len(D.LEXNAMES) == 45 and D.LEXNAMES[3] == "noun.Tops" and D.LEXNAMES[44] == "adj.ppl"


def test_wordnet_sizes():
    synsets = D.load_wordnet()
    assert len(synsets) == 117_659
    assert sum(len(s.examples) for s in synsets) == 48_339
    assert len({s.lexname for s in synsets}) == 45
    assert len({s.id for s in synsets}) == len(synsets)
    r = D.wordnet_retrieval()
    assert len(r.documents) == 117_659 and len(r.queries) == 48_224
    lex = D.wordnet_lexname()
    assert len(lex) == 117_659 and len(np.unique(lex.labels)) == 45


def test_wordnet_retrieval_sample_is_seeded_and_consistent():
    a = D.wordnet_retrieval(n_queries=50, n_distractors=200, seed=3)
    b = D.wordnet_retrieval(n_queries=50, n_distractors=200, seed=3)
    assert a.queries == b.queries and a.documents == b.documents
    assert len(a) == 50 and len(a.documents) == len({d for r in a.relevant for d in r}) + 200
    full = {s.id: s for s in D.load_wordnet()}
    for q, rel in zip(a.queries, a.relevant):  # each query is an example of its relevant synsets
        assert all(q in full[a.doc_ids[j]].examples for j in rel)
    with pytest.raises(ValueError, match="n_queries"):
        D.wordnet_retrieval(n_queries=0)


def test_gensim_sets_sizes():
    lee = D.lee_sts()
    assert len(lee.texts) == 50 and len(lee) == 1225 and lee.pairs.max() == 49
    assert (lee.pairs[:, 0] < lee.pairs[:, 1]).all()
    assert len(D.simlex999()) == 999 and len(D.wordsim353()) == 353
    pol = D.polarity()
    assert len(pol) == 200 and np.bincount(pol.labels).tolist() == [100, 100]
    assert not any(t.startswith("__label__") for t in pol.texts)


def test_brown_passages():
    try:
        brown = D.brown_genre()
    except D.DataNotFoundError as e:
        pytest.skip(str(e))
    assert len(np.unique(brown.groups)) == 131 and len(brown.label_names) == 15  # held-out documents only
    assert len(np.unique(brown.labels)) == 15 and len(brown) > 3_000
    from ternlib.data.corpus import brown_documents, training_sentences
    held_out = {d for d, _, train in brown_documents() if not train}
    assert set(np.unique(brown.groups)) == held_out
    passages = " ".join(brown.texts[:300])
    assert not any(s in passages for s in training_sentences(2000, seed=1))  # no training text leaks in
    assert D.detokenize_brown("The/at ``/`` jury/nn ''/'' said/vbd ,/, no/at ./.") == 'The "jury" said, no.'


def test_missing_data_names_the_package(tmp_path):
    with pytest.raises(D.DataNotFoundError, match="apt-get install wordnet-base"):
        D.load_wordnet(tmp_path)
    with pytest.raises(D.DataNotFoundError, match="npm install"):
        D.brown_dir(tmp_path)


def test_gensim_data_dir_override(tmp_path, monkeypatch):
    import shutil

    from ternlib.data.assets import GENSIM_FILES

    for name in GENSIM_FILES:
        shutil.copy(D.gensim_data_dir() / name, tmp_path / name)
    monkeypatch.setenv("TERNLIB_GENSIM_DATA_DIR", str(tmp_path))
    assert D.gensim_data_dir() == tmp_path and len(D.lee_sts()) == 1225
    (tmp_path / "pang_lee_polarity.cor").unlink()  # a copy that lacks a file is named, not skipped
    with pytest.raises(D.DataNotFoundError, match="missing pang_lee_polarity.cor"):
        D.polarity()
    monkeypatch.setenv("TERNLIB_GENSIM_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(D.DataNotFoundError, match="TERNLIB_GENSIM_DATA_DIR"):
        D.gensim_data_dir()


# --------------------------------------------------------------------------------------------
# suite: bad input, reporting, a fake model, MiniLM


class HashingBoW:
    """A tiny lexical encoder: hashed bag of lowercased words (enough to beat chance)."""

    def encode(self, texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
               show_progress_bar=False):
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(",", " ").replace(":", " ").split():
                out[i, zlib.crc32(w.encode()) % 256] += 1
        out[:, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_evaluate_bad_input():
    with pytest.raises(ValueError, match="known tasks: wordnet-retrieval"):
        evaluate(HashingBoW(), tasks=["lee-sts", "mteb"])
    with pytest.raises(TypeError, match="encode"):
        evaluate(object(), tasks=["lee-sts"])
    with pytest.raises(ValueError, match="known sizes"):
        evaluate(HashingBoW(), tasks=["lee-sts"], sizes={"queries": 10})


def test_evaluate_structure_with_a_lexical_model():
    sizes = {"retrieval_queries": 100, "retrieval_distractors": 200, "lexname": 300}
    r = evaluate(HashingBoW(), tasks=["wordnet-retrieval", "wordnet-lexname", "lee-sts"], fast=True,
                 sizes=sizes, progress=False)
    assert r["fast"] is True and list(r["tasks"]) == ["wordnet-retrieval", "wordnet-lexname", "lee-sts"]
    ret = r["tasks"]["wordnet-retrieval"]
    assert set(ret) == {"main", "ndcg@10", "recall@1", "recall@10", "mrr@10"} and ret["main"] == ret["ndcg@10"]
    assert ret["main"] > 0.1  # words of the example sentence are often the synset's lemmas
    assert r["n"]["wordnet-retrieval"]["queries"] == 100
    assert (r["n"]["wordnet-lexname"]["train"], r["n"]["wordnet-lexname"]["test"]) == (210, 90)
    again = evaluate(HashingBoW(), tasks=["wordnet-retrieval", "wordnet-lexname", "lee-sts"], fast=True,
                     sizes=sizes, progress=False)
    assert again["tasks"] == r["tasks"]  # same seed, same samples and splits, same scores


def test_results_table_and_json(tmp_path):
    base = {"tasks": {"lee-sts": {"main": 0.6, "spearman": 0.6},
                      "polarity": {"main": 0.8, "accuracy": 0.8}}, "fast": True}
    new = {"tasks": {"lee-sts": {"main": 0.3, "spearman": 0.3},
                     "polarity": {"main": float("nan"), "accuracy": float("nan")}}, "fast": True}
    table = results_table(new, baseline=base)
    lines = table.splitlines()
    assert lines[0] == "| task | metric | score | baseline | retention |"
    assert lines[2] == "| lee-sts | spearman | 0.3000 | 0.6000 | 0.5000 |"
    assert lines[3] == "| polarity | accuracy | n/a | 0.8000 | n/a |"
    assert lines[4].startswith("| **average** |") and lines[4].endswith("| 0.5000 |")
    assert "retention" not in results_table(base)
    save_results(new, tmp_path / "r.json")
    back = load_results(tmp_path / "r.json")
    assert back["tasks"]["lee-sts"] == {"main": 0.3, "spearman": 0.3}
    assert math.isnan(back["tasks"]["polarity"]["main"])
    with pytest.raises(ValueError, match="tasks"):
        results_table({"lee-sts": 0.5})


@pytest.fixture()
def one_thread():
    """One torch thread: on a small shared machine two threads are slower, not faster."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_minilm_fast_scores_are_sane(minilm_fp, one_thread):
    sizes = {"retrieval_queries": 200, "retrieval_distractors": 400, "lexname": 500, "brown": 150}
    r = evaluate(minilm_fp, fast=True, sizes=sizes, progress=False)
    expected = set(TASKS) - set(r["skipped"])
    assert set(r["tasks"]) == expected
    s = {name: v["main"] for name, v in r["tasks"].items()}
    assert 0.3 < s["wordnet-retrieval"] <= 1  # ~0.6 on this small corpus, ~0.3 on the full one
    assert 0.25 < s["wordnet-lexname"] < 0.9  # 45 classes, the largest holds 12%
    assert 0.3 < s["lee-sts"] < 0.9
    assert 0.25 < s["simlex999"] < 0.8
    assert 0.5 < s["wordsim353"] < 0.95
    assert 0.6 < s["polarity"] <= 1
    if "brown-genre" in s:
        assert 0.15 < s["brown-genre"] < 0.9  # 15 genres, the largest holds 16%
    for v in r["tasks"].values():
        assert all(-1 <= x <= 1 for x in v.values())
    # the per-item results the bootstrap resamples: one per query, pair or test text, and they average back
    items = r["items"]
    assert len(items["wordnet-retrieval"]["ndcg@10"]) == r["n"]["wordnet-retrieval"]["queries"]
    assert np.mean(items["wordnet-retrieval"]["ndcg@10"]) == pytest.approx(s["wordnet-retrieval"])
    assert len(items["simlex999"]["cosine"]) == len(items["simlex999"]["human"]) == r["n"]["simlex999"]["pairs"]
    from ternlib.evaluation import spearman

    assert spearman(items["simlex999"]["cosine"], items["simlex999"]["human"]) == pytest.approx(s["simlex999"])
    assert len(items["polarity"]["correct"]) == r["n"]["polarity"]["test"]
    assert np.mean(items["polarity"]["correct"]) == pytest.approx(s["polarity"])
    if "brown-genre" in s:
        assert len(items["brown-genre"]["group"]) == len(items["brown-genre"]["correct"])
    assert "items" not in evaluate(minilm_fp, tasks=["polarity"], progress=False, items=False)

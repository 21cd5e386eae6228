"""The book's summary table (chapter 7): this project's headline numbers beside the paper's.

Every number is read from the stored artifacts of the full runs (``book/artifacts/...``) or quoted
from the paper, formatted exactly as the chapter that shows it prints it, and carries the chapter
notebook (or, for the paper's own figures that no chapter quotes, the paper) it links to. One
function computes them, so the summary chapter and the test that checks it against the chapters'
stored outputs (``tests/test_summary.py``) cannot disagree.

Example::

    >>> from experiments.report import summary_table, summary_markdown    # doctest: +SKIP
    >>> rows = summary_table("book/artifacts")                         # doctest: +SKIP
    >>> rows[0]["ours"]["figures"][0]["text"], rows[0]["ours"]["figures"][0]["source"]  # doctest: +SKIP
    ('1.0171', '03_evaluating_text.ipynb')
    >>> print(summary_markdown(rows))                                  # doctest: +SKIP
    | | measure | this book | the paper | setup (this book / the paper) |
    ...

A row is a plain dict: ``key``, ``group``, ``measure``, ``note``, ``ours`` and ``paper`` (each a
*cell*: ``{"template": "{} -> {}", "figures": [figure, ...]}``, the template's ``{}`` filled with
the figures), and ``plot`` (values for the chapter's charts). A figure is
``{"text": "0.53x", "value": 0.527..., "source": "04_fast_kernels.ipynb"}``: ``text`` is the
number as its source prints it. A plot entry has ``label``, ``kind`` ("quality" or "cost"),
``ours`` and ``paper`` (None: not run, or not reported; ``ours`` absent: nothing here compares). A result
that is not there yet (a run not made) gives the cell
``{"template": "not yet run", "figures": []}`` instead of an error.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PAPER_URL = "https://arxiv.org/abs/2411.15438"

# Quoted from Chen et al., arXiv:2411.15438 (FP32 -> ternary, beta = 2), as the project's PAPER.md
# records them: text = xiaobu-embedding-v2 on 29 C-MTEB tasks; image = ViT-B/16, linear probe;
# efficiency measured on an A800 GPU (BitBLAS kernels; FP32 embedding tables counted in storage).
PAPER = {
    "text average retention": 0.964, "text retrieval retention": 0.949, "text gptq retention": round(71.76 / 73.65, 3),
    "cifar10": (96.79, 94.79), "cifar100": (86.38, 82.36),
    "text latency": 0.37, "text storage": 0.13, "image latency": 0.69, "image storage": 0.07,
}

CH1, CH3, CH4 = "01_fp32_to_ternary.ipynb", "03_evaluating_text.ipynb", "04_fast_kernels.ipynb"
CH5, CH6 = "05_image_embeddings.ipynb", "06_ann_search.ipynb"

# The rows, in order (tests/test_summary.py parametrizes over these keys).
ROW_KEYS = ("text-headline", "text-retrieval", "text-headline-large", "text-retrieval-large", "text-retrieval-full",
            "text-retrieval-queue", "text-retrieval-cpu-large", "text-a8-large", "text-gptq",
            "text-storage-paper", "text-storage", "text-storage-linear", "text-latency-layer", "text-latency-encoder",
            "text-latency-ort", "text-latency-gpu",
            "image-probe", "image-storage", "image-latency", "ann-exact", "ann-hnsw", "ann-latency")

NOT_RUN = "not yet run"


def _fig(text: str, value: float, source: str) -> dict[str, Any]:
    return {"text": text, "value": float(value), "source": source}


def _cell(template: str, *figures: dict[str, Any]) -> dict[str, Any]:
    return {"template": template, "figures": list(figures)}


def _none(text: str = "—") -> dict[str, Any]:
    return _cell(text)


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def retention(results: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """Per-task retention ``main score / baseline main score`` of two ``ternlib eval`` results
    (the tasks of ``baseline``), as chapter 3 and ``ternlib.evaluation.results_table`` compute it."""
    return {t: results["tasks"][t]["main"] / b["main"] for t, b in baseline["tasks"].items()}


def _boot(results: dict | None, fp32: dict | None) -> dict[str, Any] | None:
    """Paired-bootstrap retention of one ``eval`` result against FP32 (chapter 3's numbers: 2,000 draws, seed 0);
    None when either result is missing or has no per-item results."""
    if not (results and fp32 and "items" in results and "items" in fp32):
        return None
    from ternlib.evaluation import bootstrap_retention

    return bootstrap_retention(results, fp32)


def _ci_cell(s: dict[str, float] | None, link: str = CH3) -> dict[str, Any]:
    """A "retention [low, high]" cell, each figure as chapter 3 prints it ("0.975 [0.961, 0.988]")."""
    if s is None:
        return _none(NOT_RUN)
    return _cell("{} [{}, {}]", *(_fig(f"{s[k]:.3f}", s[k], link) for k in ("retention", "low", "high")))


def _text_rows(art: Path) -> list[dict[str, Any]]:
    t = art / "text"
    fp32, best, large, large_a8, gptq, queue, cpu_large = (_load(t / f) for f in (
        "fp32.json", "best/eval.json", "large_batch/eval.json", "large_batch/eval_a8.json",
        "baselines/int2-g16-gptq.json", "queue_kl/eval.json", "large_batch_cpu/eval.json"))
    b_best, b_large, b_gptq, b_queue, b_cpu_large = (_boot(r, fp32) for r in (best, large, gptq, queue, cpu_large))
    q_run, c_run = _load(t / "queue_kl" / "run.json"), _load(t / "large_batch_cpu" / "run.json")
    b_cpu_seed1 = _boot(_load(t / "large_batch_cpu" / "seed1" / "eval.json"), fp32)
    b_cpu_seed2 = _boot(_load(t / "large_batch_cpu" / "seed2" / "eval.json"), fp32)
    q_minutes = f"{q_run['training_seconds'] / 60:.0f} min" if q_run else "about an hour"
    c_minutes = f"{c_run['training_seconds'] / 60:.0f} min" if c_run else "about an hour"
    cs = _load(t / "corpus_size.json")
    full = cs["rows"][-1] if cs else None
    pa, pr, pg = PAPER["text average retention"], PAPER["text retrieval retention"], PAPER["text gptq retention"]

    def head(b):
        return b["headline"] if b else None

    def retr(b):
        return b["tasks"]["wordnet-retrieval"] if b else None

    def val(s):
        return s["retention"] if s else None

    replicates = f"; seed 1 keeps {val(retr(b_cpu_seed1)):.3f}" if b_cpu_seed1 else ""
    if b_cpu_seed2:
        replicates += f", seed 2 (teacher cache) {val(retr(b_cpu_seed2)):.3f}"

    if large and large_a8 and fp32:  # point estimates (chapter 4 prints them; intervals where items were kept)
        from ternlib.evaluation import headline_retention

        hl, hq = headline_retention(large, fp32), headline_retention(large_a8, fp32)
        rf, rq = retention(large, fp32), retention(large_a8, fp32)
        f_min, q_min = min(rf.items(), key=lambda kv: kv[1]), min(rq.items(), key=lambda kv: kv[1])
        a8_cell = _cell(f"headline {{}} -> {{}}; lowest task {{}} ({f_min[0]}) -> {{}} ({q_min[0]})",
                        *(_fig(f"{v:.3f}", v, CH4) for v in (hl, hq, f_min[1], q_min[1])))
        a8_value = hq
    else:
        a8_cell, a8_value = _none(NOT_RUN), None
    headline = "headline retention [95% interval]: mean of retrieval, classification, sentence similarity"
    return [
        {"key": "text-headline", "group": "text quality", "measure": headline + ", best recipe (CPU)",
         "ours": _ci_cell(head(b_best)), "paper": _cell("{}", _fig(f"{pa:.3f}", pa, CH3)),
         "note": "all-MiniLM-L6-v2, 600 steps x 32 sentences, 5 sentence-level tasks in 3 categories "
                 "(word similarity apart) / xiaobu-embedding-v2, mean over 29 C-MTEB tasks",
         "plot": [{"label": "text: headline retention", "kind": "quality", "ours": val(head(b_best)), "paper": pa}]},
        {"key": "text-retrieval", "group": "text quality",
         "measure": "retrieval retention (nDCG@10), best recipe (CPU)",
         "ours": _ci_cell(retr(b_best)), "paper": _cell("{}", _fig(f"{pr:.3f}", pr, CH3)),
         "note": "WordNet, 4,000 queries over ~20k synsets / C-MTEB retrieval tasks",
         "plot": [{"label": "text: retrieval retention", "kind": "quality", "ours": val(retr(b_best)), "paper": pr}]},
        {"key": "text-headline-large", "group": "text quality", "measure": headline + ", large-batch recipe (GPU)",
         "ours": _ci_cell(head(b_large)), "paper": _none(),
         "note": "best + contrastive term, 256 sentences x 1,200 steps (2 min on an H100)",
         "plot": [{"label": "text: headline retention, large batch", "kind": "quality", "ours": val(head(b_large)),
                   "paper": None}]},
        {"key": "text-retrieval-large", "group": "text quality",
         "measure": "retrieval retention (nDCG@10), large-batch recipe (GPU)", "ours": _ci_cell(retr(b_large)),
         "paper": _none(), "note": "16x the training sentences of the CPU recipes; ~20k synsets",
         "plot": [{"label": "text: retrieval retention, large batch", "kind": "quality", "ours": val(retr(b_large)),
                   "paper": None}]},
        {"key": "text-retrieval-full", "group": "text quality",
         "measure": "retrieval retention over the whole of WordNet (117,659 documents), large-batch recipe",
         "ours": _ci_cell(full), "paper": _none(),
         "note": "the same 4,000 queries; int8 activations, as search serves the model (chapter 6)",
         "plot": [{"label": "text: retrieval retention, whole corpus", "kind": "quality", "ours": val(full),
                   "paper": None}]},
        {"key": "text-retrieval-queue", "group": "text quality",
         "measure": "retrieval retention (nDCG@10), queue-KL recipe (CPU, 2 cores)", "ours": _ci_cell(retr(b_queue)),
         "paper": _none(),
         "note": f"best + similarity KL over a queue of 4,096 teacher embeddings, 2,500 x 32 sentences ({q_minutes})",
         "plot": [{"label": "text: retrieval retention, CPU queue-KL", "kind": "quality", "ours": val(retr(b_queue)),
                   "paper": None}]},
        {"key": "text-retrieval-cpu-large", "group": "text quality",
         "measure": "retrieval retention (nDCG@10), large-batch-cpu recipe (CPU, 2 cores)",
         "ours": _ci_cell(retr(b_cpu_large)), "paper": _none(),
         "note": f"the large-batch recipe's batches of 256 in micro-batches of 32, 540 steps ({c_minutes}){replicates}",
         "plot": [{"label": "text: retrieval retention, CPU large batch", "kind": "quality",
                   "ours": val(retr(b_cpu_large)), "paper": None}]},
        {"key": "text-a8-large", "group": "text quality",
         "measure": "float -> int8 activations (the fast kernels' path), large-batch recipe", "ours": a8_cell,
         "paper": _none(), "note": "per-token int8 activations; headline and the lowest task",
         "plot": [{"label": "text: headline retention, int8 activations", "kind": "quality",
                   "ours": a8_value, "paper": None}]},
        {"key": "text-gptq", "group": "text quality",
         "measure": "baseline: 2-bit GPTQ, groups of 16 (3.1 bits a weight, no training): headline retention",
         "ours": _ci_cell(head(b_gptq)), "paper": _cell("{}", _fig(f"{pg:.3f}", pg, CH3)),
         "note": "GPTQ on 128 Brown sentences / the paper's 71.76 over FP32's 73.65 (its ternary: 70.97)",
         "plot": [{"label": "text: 2-bit GPTQ g16 (baseline)", "kind": "quality", "ours": val(head(b_gptq)),
                   "paper": pg}]},
    ]


def _text_storage_rows(art: Path) -> list[dict[str, Any]]:
    path = art / "text" / "best" / "model"
    s_paper = _cell("{}", _fig(f"{PAPER['text storage']:.2f}x", PAPER["text storage"], PAPER_URL))
    if (path / "ternlib.json").exists():
        from ternlib import load, storage_report

        rep = storage_report(load(path))
        tot, emb, lin = rep.total, rep.rows["embeddings"], rep.ternary_linear
        fp_emb = (tot.bytes - emb.bytes + emb.fp32_bytes) / tot.fp32_bytes  # token embeddings left in FP32
        cells = [_cell("{}x", _fig(f"{v:.4f}", v, CH1)) for v in (fp_emb, tot.ratio, lin.ratio)]
        values = [fp_emb, tot.ratio, lin.ratio]
    else:
        cells, values = [_none(NOT_RUN)] * 3, [None] * 3
    return [
        {"key": "text-storage-paper", "group": "text efficiency",
         "measure": "storage, whole model, token embeddings in FP32 (the paper's accounting)",
         "ours": cells[0], "paper": s_paper,
         "note": "2-bit packed linear layers; MiniLM's embedding table is half its parameters",
         "plot": [{"label": "text: storage, FP32 embeddings", "kind": "cost", "ours": values[0],
                   "paper": PAPER["text storage"]}]},
        {"key": "text-storage", "group": "text efficiency",
         "measure": "storage, whole model as saved (int8 token embeddings)", "ours": cells[1], "paper": _none(),
         "note": "the best-recipe checkpoint",
         "plot": [{"label": "text: storage, as saved", "kind": "cost", "ours": values[1], "paper": None}]},
        {"key": "text-storage-linear", "group": "text efficiency", "measure": "storage, linear layers only",
         "ours": cells[2], "paper": _none(), "note": "codes + scales + biases",
         "plot": [{"label": "text: storage, linear layers", "kind": "cost", "ours": values[2], "paper": None}]},
    ]


def _text_latency_rows(art: Path) -> list[dict[str, Any]]:
    bench = _load(art / "kernels" / "bench_cpu.json")
    lat_paper = _cell("{}", _fig(f"{PAPER['text latency']:.2f}x", PAPER["text latency"], PAPER_URL))
    if bench:
        layer = next(r for r in bench["layers"] if (r["K"], r["N"], r["M"]) == (768, 3072, 1))["ratio"]["ternary a8"]
        work = {w["workload"]: w["ratio"]["ternary a8"] for w in bench["encoder"]["workloads"]}
        q, b = work["one query"], work["512 sentences, batch 64"]
        ours_layer = _cell("{}", _fig(f"{layer:.2f}x", layer, CH4))
        ours_enc = _cell("one query {}, 512 sentences {}", _fig(f"{q:.2f}x", q, CH4), _fig(f"{b:.2f}x", b, CH4))
    else:
        layer = q = b = None
        ours_layer = ours_enc = _none(NOT_RUN)
    ort = bench and "ort int8" in bench["encoder"]["workloads"][0]["ratio"]  # a run with onnxruntime installed
    if ort:
        r1 = {w["workload"]: w["ratio"] for w in bench["encoder"]["workloads"]}
        one, many = r1["one query"], r1["512 sentences, batch 64"]
        ours_ort = _cell("one query: ternary {}, ONNX Runtime int8 {}; 512 sentences: ternary {}, ONNX Runtime int8 {}",
                         *(_fig(f"{v:.2f}x", v, CH4) for v in (one["ternary a8"], one["ort int8"],
                                                               many["ternary a8"], many["ort int8"])))
        ort_plot = [{"label": "text: latency, one query, ONNX Runtime int8", "kind": "cost", "ours": one["ort int8"],
                     "paper": None}]
    else:
        ours_ort, ort_plot = _none(NOT_RUN), [{"label": "text: latency, one query, ONNX Runtime int8", "kind": "cost",
                                               "ours": None, "paper": None}]
    gpu = _load(art / "kernels" / "gpu_check_h100.json")
    if gpu:
        fp16 = {(r["batch"], r["seq"]): r["ms_median"] for r in gpu["e2e"] if r["model"] == "fp16"}
        ratios = [r["ms_median"] / fp16[(r["batch"], r["seq"])] for r in gpu["e2e"] if r["model"].endswith("/auto")]
        lo, hi = min(ratios), max(ratios)
        ours_gpu = _cell("{}-{}x cuBLAS fp16's time", _fig(f"{lo:.1f}", lo, CH4), _fig(f"{hi:.1f}", hi, CH4))
    else:
        lo = None
        ours_gpu = _none(NOT_RUN)
    return [
        {"key": "text-latency-layer", "group": "text efficiency",
         "measure": "latency, one 768->3072 linear layer, 1 token", "ours": ours_layer, "paper": _none(),
         "note": "2-bit weights, int8 activations, 2 CPU threads (BERT-base / ViT-B shape)",
         "plot": [{"label": "text: latency, one layer, 1 token", "kind": "cost", "ours": layer, "paper": None}]},
        {"key": "text-latency-encoder", "group": "text efficiency", "measure": "latency, whole encoder end to end",
         "ours": ours_enc, "paper": lat_paper,
         "note": "MiniLM on 2 CPU threads, batches of 64 / A800 GPU, BitBLAS, against fake-quant FP32",
         "plot": [{"label": "text: latency, encoder, one query", "kind": "cost", "ours": q,
                   "paper": PAPER["text latency"]},
                  {"label": "text: latency, encoder, 512 sentences", "kind": "cost", "ours": b, "paper": None}]},
        {"key": "text-latency-ort", "group": "text efficiency",
         "measure": "latency, whole encoder, against the CPU peer: ternary and ONNX Runtime int8 (x torch FP32's time)",
         "ours": ours_ort, "paper": _none(),
         "note": "ONNX Runtime 1.31 with int8 dynamic quantization (per-channel weights), same process, interleaved; "
                 "the same benchmark run, on " + (bench["machine"]["cpu"] if ort else "-"),
         "plot": ort_plot},
        {"key": "text-latency-gpu", "group": "text efficiency",
         "measure": "latency, whole encoder end to end on an H100 GPU, ternary (Triton) against cuBLAS fp16",
         "ours": ours_gpu, "paper": _none(),
         "note": "MiniLM, auto-dispatched Triton kernels, same batch and length for both (the paper's A800 figure "
                 "is against fake-quantized FP32, not fp16)",
         "plot": [{"label": "text: latency on a GPU, ternary / fp16 (worst)", "kind": "cost",
                   "ours": None if lo is None else hi, "paper": None}]},
    ]


def _image_rows(art: Path) -> list[dict[str, Any]]:
    res = _load(art / "image" / "results.json")
    (c10a, c10b), (c100a, c100b) = PAPER["cifar10"], PAPER["cifar100"]

    def probe(fp: float, t: float, source: str) -> list[dict[str, Any]]:
        return [_fig(f"{fp:.2f}", fp, source), _fig(f"{t:.2f}", t, source), _fig(f"{fp - t:.2f}", fp - t, source)]

    paper_probe = _cell("CIFAR-10 {} -> {} ({} points lost); CIFAR-100 {} -> {} ({} points lost)",
                        *probe(c10a, c10b, CH5), *probe(c100a, c100b, CH5))
    paper_storage = _cell("{}", _fig(f"{PAPER['image storage']:.2f}x", PAPER["image storage"], CH5))
    paper_latency = _cell("{}", _fig(f"{PAPER['image latency']:.2f}x", PAPER["image latency"], CH5))
    best = fp = t = s_ratio = lat1 = lat256 = None
    if res:
        # as chapter 5: the recipe with the best linear probe for quality; storage and latency of the last recipe
        best = max(res["distill"], key=lambda n: res["probes"][f"ternary {n}"]["linear"])
        fp, t = 100 * res["probes"]["FP32"]["linear"], 100 * res["probes"][f"ternary {best}"]["linear"]
        timed = f"ternary {res['config']['recipes'][-1]}"
        tot = res["storage"][timed]["total"]
        s_ratio = tot["bytes"] / tot["fp32_bytes"]
        lat1, lat256 = res["latency"]["1"]["ratio"][timed], res["latency"]["256"]["ratio"][timed]
        ours_probe = _cell("{} -> {} ({} points lost)", *probe(fp, t, CH5))
        ours_storage = _cell("{}", _fig(f"{s_ratio:.3f}x", s_ratio, CH5))
        ours_latency = _cell("1 image {}, 256 images {}", _fig(f"{lat1:.2f}x", lat1, CH5),
                             _fig(f"{lat256:.2f}x", lat256, CH5))
    else:
        ours_probe = ours_storage = ours_latency = _none(NOT_RUN)
    setup = "small ViT on Fashion-MNIST, 2 CPU threads / ViT-B/16 on CIFAR, A800 GPU"
    return [
        {"key": "image-probe", "group": "image quality",
         "measure": "linear-probe accuracy (%), FP32 -> ternary",
         "ours": ours_probe, "paper": paper_probe, "note": setup + (f"; recipe: {best}" if best else ""),
         "plot": [{"label": "image: linear probe (paper: CIFAR-10)", "kind": "quality",
                   "ours": t / fp if res else None, "paper": c10b / c10a},
                  {"label": "image: linear probe (paper: CIFAR-100)", "kind": "quality", "paper": c100b / c100a}]},
        {"key": "image-storage", "group": "image efficiency", "measure": "storage, whole encoder",
         "ours": ours_storage, "paper": paper_storage, "note": setup,
         "plot": [{"label": "image: storage", "kind": "cost", "ours": s_ratio, "paper": PAPER["image storage"]}]},
        {"key": "image-latency", "group": "image efficiency", "measure": "latency, whole encoder",
         "ours": ours_latency, "paper": paper_latency, "note": setup,
         "plot": [{"label": "image: latency, 1 image", "kind": "cost", "ours": lat1, "paper": PAPER["image latency"]},
                  {"label": "image: latency, 256 images", "kind": "cost", "ours": lat256, "paper": None}]},
    ]


def _ann_rows(art: Path) -> list[dict[str, Any]]:
    res = _load(art / "ann" / "wordnet_full.json")
    rows = {(r["encoder"], r["index"]): r for r in res["rows"]} if res else {}
    exact, hnsw = rows.get(("ternary", "Flat")), rows.get(("ternary", "HNSW"))

    def pct(r):
        if not r:
            return _none(NOT_RUN)
        return _cell("{}", _fig(f"{r['ndcg@10 vs FP32+Flat']:.1%}", r["ndcg@10 vs FP32+Flat"], CH6))

    unpublished = _none("not published")
    setup = ("WordNet, 48,224 queries over 117,659 documents, 2 CPU threads, the large-batch checkpoint / "
             "the paper ran FAISS on CmedqaRetrieval")
    return [
        {"key": "ann-exact", "group": "ANN search", "measure": "nDCG@10 of ternary + exact search, vs FP32 + exact",
         "ours": pct(exact), "paper": unpublished, "note": setup + "; the encoder's loss alone",
         "plot": [{"label": "ANN: ternary + exact, nDCG@10 vs FP32", "kind": "quality",
                   "ours": exact["ndcg@10 vs FP32+Flat"] if exact else None, "paper": None}]},
        {"key": "ann-hnsw", "group": "ANN search", "measure": "nDCG@10 of ternary + HNSW, vs FP32 + exact",
         "ours": pct(hnsw), "paper": unpublished, "note": "encoder and index together",
         "plot": [{"label": "ANN: ternary + HNSW, nDCG@10 vs FP32", "kind": "quality",
                   "ours": hnsw["ndcg@10 vs FP32+Flat"] if hnsw else None, "paper": None}]},
        {"key": "ann-latency", "group": "ANN search",
         "measure": "latency of one query (encode + search), ternary + HNSW vs FP32 + exact",
         "ours": (_cell("{}", _fig(f"{hnsw['e2e vs FP32+Flat']:.2f}x", hnsw["e2e vs FP32+Flat"], CH6))
                  if hnsw else _none(NOT_RUN)),
         "paper": unpublished, "note": "batch 1, interleaved in one process",
         "plot": [{"label": "ANN: ternary + HNSW, query latency", "kind": "cost",
                   "ours": hnsw["e2e vs FP32+Flat"] if hnsw else None, "paper": None}]},
    ]


def summary_table(artifacts: str | Path) -> list[dict[str, Any]]:
    """The summary rows (see the module docstring) from the artifacts directory ``artifacts``
    (the book's ``book/artifacts``: ``text/``, ``kernels/``, ``image/``, ``ann/``). Missing
    results give "not yet run" cells. Loads the best text checkpoint once, for its storage report."""
    art = Path(artifacts)
    rows = _text_rows(art) + _text_storage_rows(art) + _text_latency_rows(art) + _image_rows(art) + _ann_rows(art)
    assert tuple(r["key"] for r in rows) == ROW_KEYS
    return rows


def render_cell(cell: dict[str, Any], link: bool = True) -> str:
    """A cell as Markdown: its template with each figure as a link to its source (or plain text)."""
    figs = [f"[{f['text']}]({f['source']})" if link else f["text"] for f in cell["figures"]]
    return cell["template"].replace("->", "→").format(*figs)


def summary_markdown(rows: list[dict[str, Any]], link: bool = True) -> str:
    """The rows as one Markdown table, every number a link to the notebook (or paper) it comes from."""
    lines = ["| | measure | this book | the paper | setup (this book / the paper) |", "|---|---|---|---|---|"]
    last = None
    for r in rows:
        group = r["group"] if r["group"] != last else ""
        last = r["group"]
        lines.append(f"| {group} | {r['measure'].replace('->', '→')} | {render_cell(r['ours'], link)} | "
                     f"{render_cell(r['paper'], link)} | {r['note']} |")
    return "\n".join(lines)


def figures(rows: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every figure of the table as ``(row key, "ours" | "paper", figure)``."""
    return [(r["key"], side, f) for r in rows for side in ("ours", "paper") for f in r[side]["figures"]]

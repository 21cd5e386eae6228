"""Writes book/07_summary.ipynb (unexecuted); tools/run_notebooks.py then stores a full run's outputs.

Kept in the repository so the chapter's source stays editable as Python: edit here, rerun
``python tools/make_ch7.py && python tools/run_notebooks.py book/07_summary.ipynb``.
The numbers of the summary table come from ``ternlib.report.summary_table``, which
tests/test_summary.py checks against the stored outputs of the chapters they link to.
"""
from nbbuild import Notebook

nb = Notebook()
md, code, figure = nb.md, nb.code, nb.figure

md('''
# Summary

Six chapters took a pretrained embedding model apart and put it back together with ternary
weights: the rule that rounds each weight to $-1$, $0$ or $+1$ times a scale (chapter 1), the
self-taught distillation that wins back the quality rounding loses (chapter 2), the evaluation
that says how much was won back (chapter 3), the kernels that turn two-bit weights into speed
(chapter 4), the same recipe on an image encoder (chapter 5), and the search system built on the
embeddings (chapter 6). This chapter puts their headline numbers into one table, beside the
numbers of the paper the book reproduces {cite:p}`chen2024ternary`. Every number in the table is
a link to the chapter whose stored outputs show it, and a test of the repository
(`tests/test_summary.py`) checks that it is printed there, digit for digit.

## Learning objectives

After this chapter you can:

- read the book's results in one table and follow each number to the chapter, the stored run
  and the command that produced it;
- tell the two sides of a ternary encoder apart: what it keeps (retention, a ratio of quality
  scores) and what it saves (storage and latency, ratios of bytes and milliseconds);
- say which of the paper's results this book reproduces on its own models and machine, which it
  does not, and why a ratio measured on a different model, benchmark and processor compares
  only with care;
- rebuild the table from the stored artifacts with `ternlib.report.summary_table`.
''')

code('''
import os
from pathlib import Path

# Offline hub settings must be set before anything imports transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FAST = os.environ.get("TERNLIB_FAST", "0") == "1"  # CI runs every chapter in fast mode (the same here: it only reads)
ARTIFACTS = Path(os.environ.get("TERNLIB_ARTIFACTS", "artifacts"))  # relative to book/
# This chapter trains and times nothing: it reads the stored runs of chapters 3-6
# (text/, kernels/, image/results.json, ann/wordnet_full.json under ARTIFACTS).
''', ["parameters"])

code('''
import json
import warnings

warnings.filterwarnings("ignore")

import matplotlib.pyplot as plt
import numpy as np
import transformers
from IPython.display import Markdown, display

import ternlib
from ternlib import report

transformers.logging.set_verbosity_error()
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})
print(f"ternlib {ternlib.__version__}, FAST={FAST}")
''')

md('''
## How to read the table

Three kinds of number appear in it.

- **Retention** is a quality score of the ternary model divided by the same score of its FP32
  original: 1 means nothing was lost. For text it is the mean of the per-task ratios of chapter 3
  (the paper's is the same ratio on its benchmark); for images the chapters report the
  linear-probe accuracy itself and the points lost, as the paper does; for search it is the
  nDCG@10 of the ternary encoder with an index against FP32 with exact search (chapter 6).
- **Storage ratios** are the bytes of the ternary model as `ternlib.save` stores it over the bytes
  of the FP32 model (`ternlib.storage_report`, chapter 1). Lower is better.
- **Latency ratios** are the time of the ternary model over the time of the FP32 model, both
  measured in one process, interleaved (chapters 4 to 6). Lower is faster.

Each side of the table was measured on its own terms, and the terms differ:

| | this book | the paper |
|---|---|---|
| text model | all-MiniLM-L6-v2: 22.7M parameters, English | xiaobu-embedding-v2: 326M parameters (BERT-large), Chinese |
| text benchmark | the offline suite of chapter 3: 7 tasks | C-MTEB: 29 tasks |
| image model and data | a small ViT trained here on Fashion-MNIST | ViT-B/16, linear probes on CIFAR-10 and CIFAR-100 |
| hardware | a 2-core CPU (AVX-512 VNNI) | an A800 GPU with BitBLAS kernels |
| latency baseline | the original FP32 model, same process, interleaved | their fake-quantized FP32 model, with tokenization and data loading inside the timer |
| storage | embedding tables as the checkpoint stores them (int8 for text) | FP32 embedding tables |
| ANN search | measured (chapter 6) | FAISS indexes run, no numbers published |

So the *ratios* compare, loosely; the raw scores do not, and neither do the milliseconds. The
table gives one row in the paper's storage accounting (token embeddings left in FP32) so that
the one storage figure the paper gives for text has a like-for-like partner.
''')

md('''
## The table

`ternlib.report.summary_table` reads the stored runs and returns the rows; every number carries
the notebook it links to, formatted exactly as that notebook prints it (4 decimals where
chapter 3 prints 4, `0.53x` where chapter 4 prints `0.53x`). A run that has not been made shows
as "not yet run".
''')

code('''
rows = report.summary_table(ARTIFACTS)
missing = sorted({r["group"] for r in rows if r["ours"]["template"] == report.NOT_RUN})
display(Markdown(report.summary_markdown(rows)))
if missing:
    print("not yet run:", ", ".join(missing), "(see 'Where the numbers come from' below)")
''')
# myst-nb renders text/markdown outputs as CommonMark by default, which leaves a link to another
# notebook as a plain (broken) link; parsed as MyST, [1.0171](03_evaluating_text.ipynb) becomes a
# link to that chapter's page in the book, and stays a link to the notebook in Jupyter.
nb.cells[-1].metadata["mystnb"] = {"markdown_format": "myst"}

md('''
## What is kept

Figure 7.1 draws every quality row of the table as a retention, ours beside the paper's where
the paper gives one. For the image rows the retention is the ternary model's linear-probe
accuracy over the FP32 model's (the table gives the accuracies themselves).
''')


figure('''
def bars(kind, ax, xlabel, ref=1.0):
    """Horizontal bars, ours and the paper's, for the plot entries of one kind of row."""
    entries = [p for r in rows for p in r["plot"] if p["kind"] == kind]
    y = np.arange(len(entries))[::-1]
    for off, side, color, name in ((0.2, "ours", "C0", "this book"), (-0.2, "paper", "C1", "the paper (quoted)")):
        # a value; None: not yet run (ours) or not reported (paper); "absent": nothing here compares
        vals = [p.get(side, "absent") for p in entries]
        have = np.array([v not in (None, "absent") for v in vals])
        ax.barh(y[have] + off, [float(v) for v, h in zip(vals, have) if h], 0.38, color=color, label=name,
                hatch="//" if side == "paper" else None, alpha=0.85)
        for yi, v, h in zip(y + off, vals, have):
            text = f"{v:.2f}" if h else ("not yet run" if side == "ours" and v is None else "")
            ax.text((float(v) if h else 0) + 0.01, yi, text, va="center", fontsize=7)
    ax.axvline(ref, color="k", lw=1)
    ax.set_yticks(y, [p["label"] for p in entries], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8, loc="lower right")
    return entries


fig, ax = plt.subplots(figsize=(9, 4.6))
bars("quality", ax, "retention: ternary / FP32 (1 = nothing lost)")
ax.set_xlim(0, 1.25)
fig.tight_layout()
plt.show()
''', "fig-ch7-quality", '''
**Figure 7.1** Retention, ternary over FP32, of every quality row of the summary table: this
book (solid) and the paper (hatched, quoted; CIFAR-10 and CIFAR-100 for the image rows, C-MTEB
for text). The black line is the FP32 model. Different models and benchmarks: only the ratios
are comparable at all, and then loosely.
''')

md('''
On text, distillation recovers the *average* retention fully, past the paper's; but the average
mixes tasks that go above 1 (word similarity, STS) with retrieval, the task an embedding model
is mostly used for. With the CPU recipes (600 steps of 32 sentences), retrieval keeps clearly
less than the paper's retrieval categories; the large-batch recipe, 16 times the training
sentences on a GPU, brings it to within a point of the paper's and keeps the average.
Chapter 3 shows this task by task. Per-token int8 activations, which the fast kernels of
chapter 4 need, cost next to nothing on top (measured on the best-recipe model). In a search
system the retrieval loss is what the user sees: on the whole WordNet set (117,659 documents,
six times the book sample's), the large-batch encoder with exact search keeps about nine tenths of
FP32's nDCG@10, less than on the sample, since more documents leave more room to be outranked,
and an HNSW index takes a few points more (chapter 6).
''')

code('''
vals = {r["key"]: r for r in rows}


def value(key, side="ours", i=0):
    figs = vals[key][side]["figures"]
    return figs[i]["value"] if figs else None


# the claims of the paragraph above, checked on every run
if value("text-average") is not None:
    assert value("text-average") > value("text-average", "paper")            # average: past the paper's
    assert value("text-retrieval") < value("text-retrieval", "paper")        # retrieval: below it
if value("text-retrieval-large") is not None:                                 # large batch: within a point
    assert abs(value("text-retrieval-large") - value("text-retrieval", "paper")) < 0.01
    assert value("text-average-large") > value("text-average", "paper")
if value("text-average-a8") is not None:
    assert abs(value("text-average-a8") - value("text-average")) < 0.01      # int8 activations: next to nothing
if value("ann-hnsw") is not None:
    assert 0.85 < value("ann-exact") < 0.95 and value("ann-hnsw") < value("ann-exact")
    if value("text-retrieval-large") is not None:                            # the whole set: less than the sample
        assert value("ann-exact") < value("text-retrieval-large")
''')

md('''
## What is saved

Figure 7.2 draws the storage and latency rows the same way: lower is better, and the black line
is the FP32 model.
''')

figure('''
fig, ax = plt.subplots(figsize=(9, 5))
bars("cost", ax, "ternary / FP32 (bytes or time; lower is better)")
ax.set_xlim(0, 1.25)
fig.tight_layout()
plt.show()
''', "fig-ch7-cost", '''
**Figure 7.2** Storage and latency of the ternary models as a fraction of the FP32 models':
this book (solid; CPU, 2 threads) and the paper (hatched, quoted; A800 GPU). The paper's text
latency is placed beside our one-query latency; it does not say which workload it timed.
''')

md('''
The linear layers shrink to about a sixteenth (two bits for every 32), as the arithmetic of
chapter 1 says. What the *whole* model saves depends on what is not a linear layer: in MiniLM the
token-embedding table holds about half of the parameters, so with the table in FP32, the
paper's accounting, MiniLM keeps over half its bytes, where the paper's BERT-large, with a
much smaller share of embeddings, gets to 0.13x. Stored as int8, the table takes a quarter of
its FP32 bytes, and MiniLM's checkpoint comes near the paper's ratio, although the table is
still most of what is left. A ViT has no vocabulary, so its
ternary encoder gets close to the two-bit floor on its own (chapter 5).

Speed follows bytes only where bytes are the bottleneck. One large layer at one token is
memory bound, and there the packed kernel is an order of magnitude faster than FP32. The whole
encoder also runs attention, softmax, GELU, norms and tokenization, which ternary weights do
not touch, so end to end the gain shrinks to about half the time for a query and a third for
a batch: the same range as the paper's 0.37x, reached on a CPU against an honest baseline rather
than on a GPU against a fake-quantized one. In a search system, where the index removes the
exhaustive scan, the faster encoder is most of what is left, and the whole query takes a fraction
of FP32-with-exact-search's time.
''')

code('''
# the claims of the paragraphs above, checked on every run
if value("text-storage-linear") is not None:
    assert 0.06 < value("text-storage-linear") < 0.07                         # about a sixteenth
    assert value("text-storage-paper") > 0.5 > value("text-storage-paper", "paper")  # FP32 embeddings: over half
    assert value("text-storage") < 0.2                                       # int8 embeddings: near the paper's
if value("text-latency-layer") is not None:
    assert value("text-latency-layer") < 0.1                                 # an order of magnitude
    assert 0.4 < value("text-latency-encoder") < 0.6 and 0.25 < value("text-latency-encoder", i=1) < 0.45
if value("ann-latency") is not None:
    assert value("ann-latency") < 0.25
if value("image-storage") is not None:
    assert value("image-storage") < 0.15                                      # near the two-bit floor
''')

md('''
## The search system

The ANN rows of the table are two points of a larger picture: chapter 6 ran every FAISS index
family with both encoders on the whole WordNet retrieval set. Figure 7.3 puts all of them on one
plane, quality against time for one query.
''')

figure('''
ann_path = ARTIFACTS / "ann" / "wordnet_full.json"
fig, ax = plt.subplots(figsize=(8, 4.4))
if ann_path.exists():
    ann = json.loads(ann_path.read_text())
    for enc, marker, color in (("FP32", "o", "C1"), ("ternary", "s", "C0")):
        pts = [r for r in ann["rows"] if r["encoder"] == enc]
        ax.scatter([r["e2e vs FP32+Flat"] for r in pts], [r["ndcg@10 vs FP32+Flat"] for r in pts],
                   marker=marker, color=color, s=40, label=f"{enc} encoder")
        for r in pts:
            ax.annotate(r["index"], (r["e2e vs FP32+Flat"], r["ndcg@10 vs FP32+Flat"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    ax.axhline(0.97, color="C3", ls=":", lw=1, label="quality target (97% of FP32 + exact)")
    ax.axvline(0.5, color="C3", ls="--", lw=1, label="latency target (0.5x)")
    ax.set_xlabel("time for one query (encode + search) / FP32 + exact search")
    ax.set_ylabel("nDCG@10 / FP32 + exact search")
    ax.legend(fontsize=8, loc="lower right")
    tern = {r["index"]: r for r in ann["rows"] if r["encoder"] == "ternary"}
    fp = {r["index"]: r for r in ann["rows"] if r["encoder"] == "FP32"}
    for ix in tern:  # the caption's claims: every index moves left and down by about the same factor
        assert tern[ix]["e2e vs FP32+Flat"] < fp[ix]["e2e vs FP32+Flat"] and tern[ix]["ndcg@10 vs FP32+Flat"] < 0.97
        assert abs(tern[ix]["ndcg@10"] / fp[ix]["ndcg@10"] - tern["Flat"]["ndcg@10"] / fp["Flat"]["ndcg@10"]) < 0.03
else:
    ax.text(0.5, 0.5, "ANN results not yet run (chapter 6)", ha="center", va="center", transform=ax.transAxes)
fig.tight_layout()
plt.show()
''', "fig-ch7-ann", '''
**Figure 7.3** Every encoder and index of chapter 6 on the whole WordNet retrieval set: quality
(nDCG@10) and time for one query, both relative to the FP32 encoder with exact search (top
right is the reference, top left is where a search system wants to be). The ternary encoder
moves every index to the left, and down by about the same factor: the encoder's loss, not the
index's, is what keeps every ternary system below the quality target.
''')

md('''
## Where the numbers come from

Each link of the table opens the chapter that shows the number; each chapter reads a stored run
that one command reproduces (run from the repository root):

| rows | stored run | command | chapter |
|---|---|---|---|
| text quality | `book/artifacts/text/fp32.json`, `best/eval.json`, `best/eval_a8.json` | `make results` | [3](03_evaluating_text.ipynb), [4](04_fast_kernels.ipynb) |
| text quality, large batch | `book/artifacts/text/large_batch/eval.json`, `eval_a8.json` (checkpoint and `run.json` beside them) | `make results-gpu` (distills on a CUDA GPU, then evaluates on the CPU) | [3](03_evaluating_text.ipynb), [4](04_fast_kernels.ipynb) |
| text storage | `book/artifacts/text/best/model` (the checkpoint) | `make results` | [1](01_fp32_to_ternary.ipynb) |
| text latency | `book/artifacts/kernels/bench_cpu.json` | `make bench` | [4](04_fast_kernels.ipynb) |
| image | `book/artifacts/image/results.json` | `python -m ternlib vision --out book/artifacts/image` | [5](05_image_embeddings.ipynb) |
| ANN search | `book/artifacts/ann/wordnet_full.json` | `python -m ternlib ann --encoder fp32 book/artifacts/text/large_batch/model --threads 2 --out book/artifacts/ann/wordnet_full.json` | [6](06_ann_search.ipynb) |
| ANN follow-ups (efSearch, mixed encoders) | `book/artifacts/ann/followups.json` | `python tools/ann_followups.py --out book/artifacts/ann/followups.json` | [6](06_ann_search.ipynb) |

Chapter 1 computes its storage figures on a freshly ternarized MiniLM with the same packing as
the distilled checkpoint (2-bit codes, one scale per matrix, int8 token embeddings), so they are
the checkpoint's too: `summary_table` takes them from `storage_report` of the checkpoint
itself. The paper's numbers are quoted: those that chapters 3 and 5 quote link there, the two
text efficiency figures that no chapter quotes link to the paper.

## Summary

- Ternary weights with self-taught distillation keep the average quality of a text embedding
  model on this book's suite, as the paper found on C-MTEB; retrieval, the task that matters most
  for search, keeps less than in the paper on a CPU budget, and about as much with 16 times the
  training on a GPU (the large-batch recipe).
- The linear layers shrink sixteenfold; how much the whole model shrinks depends on what is not a
  linear layer, above all the token-embedding table, which an int8 copy brings down too.
- Latency falls most where weight traffic dominates (large layers, few tokens); end to end, the
  operators that stay in floating point bound the gain, on a CPU as on the paper's GPU.
- In a search system the ternary encoder with an HNSW index answers a query several times faster
  than FP32 with exact search, and its quality loss carries through every index: the encoder, not
  the index, decides how close to FP32 the results stay.
- `ternlib.report.summary_table` rebuilds this table from the stored runs; every number links to
  the chapter that shows it, and a test checks that it does.

## Exercises

1. **Mean of ratios.** The text retention is the mean of the per-task ratios. Load
   `fp32.json` and `best/eval.json` with `ternlib.evaluation.load_results` and compute the
   ratio of the mean scores instead. Which is larger, and which task makes the difference?

```{admonition} Solution
:class: dropdown
~~~python
from ternlib.evaluation import load_results
fp32, best = load_results("artifacts/text/fp32.json"), load_results("artifacts/text/best/eval.json")
tasks = list(fp32["tasks"])
ratios = {t: best["tasks"][t]["main"] / fp32["tasks"][t]["main"] for t in tasks}
mean_of_ratios = sum(ratios.values()) / len(tasks)
ratio_of_means = sum(best["tasks"][t]["main"] for t in tasks) / sum(fp32["tasks"][t]["main"] for t in tasks)
print(mean_of_ratios, ratio_of_means, sorted(ratios.items(), key=lambda kv: kv[1]))
~~~
The two differ because the mean of ratios weighs every task alike, while the ratio of means
weighs tasks by their score: a task with high scores (WordSim-353, polarity) counts more in
it, one with low scores (Brown genres) less; here the ratio of means comes out slightly higher.
Both averages hide the retrieval ratio, the lowest of all, which is why the table shows it on
its own row.
```

2. **Whose parameters stay in FP32?** If the linear layers take 1/16 of their FP32 bytes and
   everything else stays in FP32, what share of a model's parameters must be outside the linear
   layers for the whole model to come to the paper's 0.13x? Compare with MiniLM, whose storage
   report (chapter 1) puts 11.9M of its 22.7M parameters in embeddings.

```{admonition} Solution
:class: dropdown
With a share $f$ outside the linear layers, the ratio is $f + (1 - f)/16$. Setting it to 0.13
gives $f = (0.13 - 0.0625) / (1 - 0.0625) \\approx 0.072$: about 7% of the paper's model stays in
full precision, mostly its token embeddings. MiniLM has $f \\approx 11.9 / 22.7 \\approx 0.52$,
so the same packing gives $0.52 + 0.48/16 \\approx 0.55$, the table's row in the paper's
accounting. Small models have large embedding shares, which is why the int8 embedding table
matters more for them.
```

3. **Two ways to flatter a latency ratio.** The paper timed its ternary model against a
   fake-quantized FP32 model, with tokenization and data loading inside the timer. In which
   direction does each choice move the ratio ternary / FP32, and why does this book time the
   original FP32 model, interleaved in the same process?

```{admonition} Solution
:class: dropdown
A fake-quantized baseline recomputes the ternary weights on every forward pass, so it is slower
than the real FP32 model: the ratio comes out *smaller* (the ternary model looks faster).
Work inside the timer that both models share, such as tokenization and data loading, adds the
same time to both: the ratio moves *toward 1*. The two effects pull in opposite directions, so
the published 0.37x says little about either. Timing the original model interleaved with the
ternary one (each repeat runs both, in rotating order) makes the ratio answer the user's
question, "how much faster than what I run now?", and cancels slow drifts in machine load.
```

4. **A cheaper index.** With `book/artifacts/ann/wordnet_full.json`, find the ternary index with
   the fewest bytes per vector whose nDCG@10 is at most one percentage point (of FP32 + exact
   search's) below that of ternary + exact search. What does it cost in latency against
   ternary + HNSW?

```{admonition} Hint
:class: dropdown
Each entry of `rows` has `encoder`, `index`, `ndcg@10 vs FP32+Flat`, `bytes per vector` and
`e2e vs FP32+Flat`. Filter the ternary rows, keep those within 0.01 of the `Flat` row, and sort
by bytes per vector. A scalar-quantized index scans every vector, as exact search does, but with
a quarter of the bytes.
```
''')

nb.write("07_summary.ipynb")

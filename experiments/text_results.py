"""Print the README's text-results tables from the stored runs in book/artifacts/text/.

Usage: python experiments/text_results.py [--extra]   (after `make results` and `make baselines`)

The first table: each task's main score and, in brackets, its retention (ternary / FP32). The second:
retention by category (retrieval, classification, sentence similarity, word similarity), the headline
(mean of the three sentence-level categories) with its 95% paired-bootstrap interval over the evaluation
items (``ternlib.evaluation.bootstrap_retention``), for the ternary models and the integer baselines
(book/artifacts/text/baselines/, `python -m ternlib eval --int-bits ...`).
``--extra`` adds the follow-up runs of the best recipe stored in book/artifacts/text/extra/ to the first
table (each file is the `python -m ternlib eval --preset book` output of one run; the README lists the
commands).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ART = Path(__file__).resolve().parent.parent / "book" / "artifacts" / "text"
MODELS = [("FP32 teacher", "fp32.json"), ("ternary, round-to-nearest (no training)", "rtn.json"),
          ("ternary, paper recipe (hidden-state MSE)", "paper/eval.json"),
          ("ternary, best recipe", "best/eval.json"),
          ("ternary, large-batch recipe (GPU)", "large_batch/eval.json"),
          ("ternary, large-batch recipe, int8 activations", "large_batch/eval_a8.json"),
          ("ternary, queue-KL recipe (CPU, 2 cores)", "queue_kl/eval.json"),
          ("ternary, large-batch recipe on the CPU (2 cores)", "large_batch_cpu/eval.json"),
          ("ternary, large-batch recipe on the CPU, seed 1", "large_batch_cpu/seed1/eval.json"),
          ("ternary, large-batch recipe on the CPU, seed 2 (teacher cache)", "large_batch_cpu/seed2/eval.json")]


def main() -> int:
    from ternlib.evaluation import CATEGORIES, bootstrap_retention

    models = MODELS + ([(p.stem, f"extra/{p.name}") for p in sorted((ART / "extra").glob("*.json"))]
                       if "--extra" in sys.argv[1:] else [])
    runs = {name: json.loads((ART / f).read_text()) for name, f in models if (ART / f).exists()}
    if "FP32 teacher" not in runs:
        print("no results yet: run `make results`", file=sys.stderr)
        return 1
    base = runs["FP32 teacher"]["tasks"]
    tasks = list(base)
    print("| model | " + " | ".join(tasks) + " |")
    print("|---|" + "---:|" * len(tasks))
    for name, r in runs.items():
        cells = [f"{r['tasks'][t]['main']:.3f}" + ("" if name == "FP32 teacher" else
                                                     f" ({r['tasks'][t]['main'] / base[t]['main']:.1%})")
                 for t in tasks]
        print(f"| {name} | " + " | ".join(cells) + " |")

    rows = [(n, r) for n, r in runs.items() if n != "FP32 teacher" and "items" in r]
    for f in sorted((ART / "baselines").glob("*.json")):
        r = json.loads(f.read_text())
        rows.append((f"{r['int_quant']['name']} ({r['int_quant']['bits_per_weight']:.2f} bits, no training)", r))
    print()
    print("| model | " + " | ".join(CATEGORIES) + " | headline [95% interval] |")
    print("|---|" + "---:|" * (len(CATEGORIES) + 1))
    for name, r in rows:
        b = bootstrap_retention(r, runs["FP32 teacher"])
        cats = [f"{b['categories'][c]['retention']:.1%}" for c in CATEGORIES]
        h = b["headline"]
        print(f"| {name} | " + " | ".join(cats) + f" | **{h['retention']:.1%}** [{h['low']:.1%}, {h['high']:.1%}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

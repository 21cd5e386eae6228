"""Print the README's text-results table from the stored runs in book/artifacts/text/.

Usage: python experiments/text_results.py [--extra]   (after `make results`)

``--extra`` adds the follow-up runs of the best recipe stored in book/artifacts/text/extra/
(each file is the `python -m ternlib eval --preset book` output of one run; the README lists
the commands).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ART = Path(__file__).resolve().parent.parent / "book" / "artifacts" / "text"
MODELS = [("FP32 teacher", "fp32.json"), ("ternary, round-to-nearest (no training)", "rtn.json"),
          ("ternary, paper recipe (hidden-state MSE)", "paper/eval.json"),
          ("ternary, best recipe", "best/eval.json"),
          ("ternary, large-batch recipe (GPU)", "large_batch/eval.json")]


def main() -> int:
    models = MODELS + ([(p.stem, f"extra/{p.name}") for p in sorted((ART / "extra").glob("*.json"))]
                       if "--extra" in sys.argv[1:] else [])
    runs = {name: json.loads((ART / f).read_text()) for name, f in models if (ART / f).exists()}
    if "FP32 teacher" not in runs:
        print("no results yet: run `make results`", file=sys.stderr)
        return 1
    base = runs["FP32 teacher"]["tasks"]
    tasks = list(base)
    print("| model | " + " | ".join(tasks) + " | average retention |")
    print("|---|" + "---:|" * (len(tasks) + 1))
    for name, r in runs.items():
        cells, rets = [], []
        for t in tasks:
            m = r["tasks"][t]["main"]
            ret = m / base[t]["main"]
            rets.append(ret)
            cells.append(f"{m:.3f}" + ("" if name == "FP32 teacher" else f" ({ret:.1%})"))
        print(f"| {name} | " + " | ".join(cells) + f" | {sum(rets) / len(rets):.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

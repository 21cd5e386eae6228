"""Print the README's speed table from the stored benchmark run (book/artifacts/kernels/bench_cpu.json).

Usage: python experiments/speed_table.py [path/to/bench.json]   (the run itself: make bench)

The ONNX Runtime columns appear when the run had onnxruntime (it times the whole encoder only, so the
single-layer rows show a dash there); a run with --shapes adds the BERT-base / BERT-large rows, one with
--compile the torch.compile columns. Every PyTorch column runs through ternlib.LeanEncoder except "ternary,
through model.encode" (SentenceTransformer.encode, per-call bookkeeping included); "model cast to bf16" is the
ternary checkpoint with float activations after .to(torch.bfloat16), beside the bf16 column (FP32 weights cast).
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ["bf16", "int8 dynamic", "ternary a8"]
ORT = {"ort fp32": "ONNX Runtime FP32", "ort int8": "ONNX Runtime int8"}
TERNARY = "ternary (2-bit weights, int8 activations)"
SHAPES = {"bert-base": "BERT-base shape", "bert-large": "BERT-large shape"}
COMPILED = {"fp32 compiled": "FP32, torch.compile", "ternary a8 compiled": "ternary, torch.compile"}
MODEL_ENCODE = {"ternary a8, model.encode": "ternary, through model.encode"}  # runs from before it lack this column
HALF = {"ternary fp-act, bf16 model": "ternary, float activations, model cast to bf16"}  # likewise


def main(path: Path) -> None:
    res = json.loads(path.read_text())
    by = {(r["K"], r["N"], r["M"]): r for r in res["layers"]}
    rows = [(f"one layer 768->3072, {m} token{'s' if m > 1 else ''}", by[(768, 3072, m)]) for m in (1, 16, 4096)]
    work = {w["workload"]: w for w in res["encoder"]["workloads"]}
    rows += [("MiniLM, one query", work["one query"]),
             ("MiniLM, 512 sentences (batch 64)", work["512 sentences, batch 64"])]
    for shape, enc in res.get("encoder shapes", {}).items():  # `ternlib bench --shapes`: random weights
        rows += [(f"{SHAPES.get(shape, shape)} (random weights), {w['workload']}", w) for w in enc["workloads"]]
    ort = [v for v in ORT if v in work["one query"]["ratio"]]
    compiled = [v for v in COMPILED if v in work["one query"]["ratio"]]
    via_encode = [v for v in MODEL_ENCODE if v in work["one query"]["ratio"]]
    half = [v for v in HALF if v in work["one query"]["ratio"]]
    cols = VARIANTS[:-1] + ort + VARIANTS[-1:] + via_encode + half + compiled
    names = {"bf16": "bf16", "int8 dynamic": "int8 dynamic", **ORT, "ternary a8": TERNARY, **MODEL_ENCODE, **HALF,
             **COMPILED}
    print("| workload | FP32 | " + " | ".join(names[c] for c in cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    for label, r in rows:
        ms = r["ms"]["fp32"]
        fp = f"{ms / 1e3:.2f} s" if ms >= 1000 else (f"{ms:.1f} ms" if ms >= 10 else f"{ms:.3g} ms")
        cells = [f"{r['ratio'][v]:.2f}x" if v in r["ratio"] else "–" for v in cols]
        fastest = min((v for v in cols if v in r["ratio"]), key=lambda v: r["ratio"][v])
        cells[cols.index(fastest)] = f"**{cells[cols.index(fastest)]}**"  # the fastest in the row
        print(f"| {label} | {fp} (1x) | " + " | ".join(cells) + " |")
    m = res["machine"]
    print(f"\n({m['cpu']}, {m['threads']} threads, torch {m['torch']}, packed kernel {m['packed kernel isa']})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "book" / "artifacts" / "kernels" / "bench_cpu.json")

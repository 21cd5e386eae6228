"""A ternary checkpoint served by ONNX Runtime: exported with ``ternlib.export.export_ternary_onnx`` (codes as
int8 initializers, checked exact), timed against ONNX Runtime int8 of the FP32 teacher and ternlib's own
int8 path, interleaved in one process, and evaluated on the book suite beside the teacher's ONNX Runtime int8.

What it answers: can an ONNX Runtime user serve the ternary model, at what speed, and with what quality
(ONNX Runtime quantizes activations per tensor, ternlib per token)?

Usage (about 12 minutes on 2 cores; needs ``pip install onnxruntime onnx``):
    python experiments/onnx_ternary.py --model book/artifacts/text/large_batch_cpu/model \
        --out book/artifacts/kernels/onnx_ternary.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

COMMAND = ("python experiments/onnx_ternary.py --model book/artifacts/text/large_batch_cpu/model "
           "--out book/artifacts/kernels/onnx_ternary.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="book/artifacts/text/large_batch_cpu/model", help="a ternary checkpoint")
    p.add_argument("--out", default="book/artifacts/kernels/onnx_ternary.json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="few sentences and the fast suite (a smoke test)")
    args = p.parse_args(argv)

    import torch

    import ternlib
    from ternlib import bench
    from ternlib.evaluation import BOOK_SIZES, bootstrap_retention, evaluate
    from ternlib.export import export_ternary_onnx
    from ternlib.serving import LeanEncoder, OrtEncoder

    torch.set_num_threads(args.threads)
    t_start = time.time()
    teacher = ternlib.load_text_encoder()
    ternary = ternlib.load(args.model, activations="int8")
    n_sent = 128 if args.quick else 512
    sents = bench._sentences(n_sent)
    out: dict = {"model": args.model, "threads": args.threads, "machine": bench.machine(), "workloads": [],
                 "command": COMMAND}
    with tempfile.TemporaryDirectory(prefix="ternlib-onnx-ternary-") as tmp:
        ort_models, out["onnxruntime"] = bench.ort_encoders(teacher, tmp, sents[:64], threads=args.threads)
        onnx_path = Path(tmp) / "ternary_int8.onnx"
        t0 = time.time()
        out["export"] = export_ternary_onnx(ternary, onnx_path, check_texts=sents[:64])
        out["export"]["seconds"] = round(time.time() - t0, 1)
        out["export"]["checkpoint bytes"] = (Path(args.model) / "ternlib.safetensors").stat().st_size
        ort_ternary = OrtEncoder(ternary, onnx_path, out["export"]["inputs"], threads=args.threads)
        models = {"fp32": LeanEncoder(teacher), "ort int8": ort_models["ort int8"],
                  "ternary a8": LeanEncoder(ternary), "ternary, ort int8": ort_ternary}
        bench._encoder_timings(models, sents, n_sent, 64, 3 if args.quick else 5, 10 if args.quick else 30, out)

        sizes = None if args.quick else BOOK_SIZES
        evals = {name: evaluate(m, fast=args.quick, sizes=sizes, seed=0)
                 for name, m in (("fp32", teacher), ("ort int8", ort_models["ort int8"]),
                                 ("ternary a8", ternary), ("ternary, ort int8", ort_ternary))}
    out["preset"] = "fast" if args.quick else "book"
    out["quality"] = {}
    for name, r in evals.items():
        b = bootstrap_retention(r, evals["fp32"])
        out["quality"][name] = {"tasks": {t: v["main"] for t, v in r["tasks"].items()},
                                "retention": {t: v["retention"] for t, v in b["tasks"].items()},
                                "headline": b["headline"]}
    out["seconds"] = round(time.time() - t_start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for w in out["workloads"]:
        print(w["workload"], {k: f"{v:.2f}x" for k, v in w["ratio"].items()})
    for name, q in out["quality"].items():
        print(name, {t: round(v, 3) for t, v in q["retention"].items()},
              "headline", round(q["headline"]["retention"], 3))
    print(f"wrote {args.out} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

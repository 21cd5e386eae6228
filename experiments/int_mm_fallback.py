"""PyTorch's int8 GEMM on a CPU without AVX-512 VNNI, and what the ternary dispatch does there instead.

``torch._int_mm`` on the CPU is oneDNN's int8 GEMM where the CPU has int8 dot-product instructions
(AVX-512 VNNI, AMX) and a scalar loop elsewhere. This times, interleaved in one process (medians), for
MiniLM's and BERT-large's feed-forward shapes at 16, 64 and 256 tokens:

- ``fp32``: ``F.linear`` on float32 (the baseline);
- ``torch._int_mm``: the int8 product alone (activations already quantized);
- ``cpu_packed``: ternlib's C++ kernel on the 2-bit codes, quantization of the activations included;
- ``float gemm on codes``: the same integer products summed by a float32 GEMM (exact; what ``cpu_unpacked``
  does where ``torch._int_mm`` is slow, :func:`ternlib.kernels.cpu.int8_products`);

and records ``ternlib.kernels.cpu.int_mm_fast()``, the check the dispatch makes once per process.

Usage (about a minute on 2 cores; the 256-token ``torch._int_mm`` rows take most of it where it is slow):
    python experiments/int_mm_fallback.py --threads 2 --out book/artifacts/kernels/int_mm_fallback.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SHAPES = [(384, 1536), (1536, 384), (1024, 4096)]  # (K, N): MiniLM's feed-forward in and out, BERT-large's in
TOKENS = (16, 64, 256)


def measure(repeats: int = 5) -> dict:
    import torch
    import torch.nn.functional as F

    from ternlib import TernaryConfig, ternarize
    from ternlib.bench import interleaved, machine
    from ternlib.kernels import PackedTernary, set_crossover
    from ternlib.kernels import cpu as cpu_kernels

    rows = []
    set_crossover(10**9)  # cpu_packed at every size, whatever the dispatch would pick
    try:
        for k, n in SHAPES:
            cfg = TernaryConfig(activations="int8")
            t = ternarize(torch.randn(n, k, generator=torch.Generator().manual_seed(0)), cfg)
            w = PackedTernary.from_codes(t.codes, t.scales, cfg)
            codes_t = t.codes.to(torch.int8).t().contiguous()  # (K, N)
            codes_f = t.codes.float().contiguous()  # (N, K)
            for m in TOKENS:
                x = torch.randn(m, k)
                q = torch.randint(-127, 128, (m, k), dtype=torch.int8)
                qf = q.float()
                fns = {"fp32": lambda: F.linear(x, codes_f),
                       "torch._int_mm": lambda: torch._int_mm(q, codes_t),
                       "cpu_packed": lambda: cpu_kernels.cpu_packed_kernel(x, w, None),
                       "float gemm on codes": lambda: F.linear(qf, codes_f)}
                med = interleaved(fns, repeats=repeats, warmup=1)
                rows.append({"K": k, "N": n, "M": m, "ms": {a: 1e3 * v for a, v in med.items()},
                             "ratio to fp32": {a: v / med["fp32"] for a, v in med.items()}})
                print(f"K={k:5d} N={n:5d} M={m:4d}  "
                      + "  ".join(f"{a} {1e3 * v:8.3f} ms" for a, v in med.items()), flush=True)
    finally:
        set_crossover(None)
    return {"machine": machine(), "int_mm_fast": cpu_kernels.int_mm_fast(), "rows": rows,
            "note": "medians of interleaved calls; torch._int_mm without quantization, cpu_packed with it"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    res = measure(args.repeats)
    print("int_mm_fast:", res["int_mm_fast"], "| isa:", res["machine"]["packed kernel isa"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1) + "\n")
        print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

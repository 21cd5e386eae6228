"""The CPU packed kernel's two weight layouts side by side: planes128 against rows16 (int8 activations).

Usage: python experiments/rows16_layout.py [--threads 2] [--out book/artifacts/kernels/rows16_layout.json]

For each layer shape, a stack of 8 distinct layers (as a model runs them, so weights come from memory
rather than a warm cache) is run through the C++ extension's two entry points, interleaved in one
process: ``linear_small`` on ``planes128`` and ``linear_rows16`` on ``rows16``, at 1 to 32 tokens.
Both are exact; the JSON holds medians (ms per stack) and the ratio rows16 / planes128. Chapter 4 reads
it. Needs an AVX-512 VNNI CPU (rows16 exists only there); run it on a quiet machine (a few minutes).
"""
import argparse
import json
from pathlib import Path

import torch

from ternlib import TernaryConfig, ternarize
from ternlib.bench import interleaved, machine
from ternlib.kernels import cpu as cpu_kernels

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(384, 384), (384, 1536), (1536, 384), (768, 3072), (3072, 768), (1024, 4096), (4096, 1024)]  # (K, N)
TOKENS = [1, 4, 8, 16, 32]


@torch.inference_mode()
def run(shapes=SHAPES, tokens=TOKENS, layers: int = 8, repeats: int = 15) -> dict:
    ext = cpu_kernels.extension()
    if ext is None or cpu_kernels.isa() != "avx512-vnni":
        raise SystemExit(f"rows16 needs the C++ extension on an AVX-512 VNNI CPU (here: {cpu_kernels.isa()})")
    cfg = TernaryConfig(activations="int8")
    rows = []
    for k, n in shapes:
        stack = []
        for _ in range(layers):
            t = ternarize(torch.randn(n, k), cfg)
            sw = t.scales.reshape(-1).float().contiguous()
            stack.append((cpu_kernels.to_planes128(t.codes), cpu_kernels.to_rows16(t.codes), sw))
        for m in tokens:
            x = torch.randn(m, k)
            assert all(torch.equal(ext.linear_small(x, p, sw, None, True, -1), ext.linear_rows16(x, r, sw, None, n))
                       for p, r, sw in stack[:2])  # the same integers, the same epilogue: bit for bit
            med = interleaved({
                "planes128": lambda: [ext.linear_small(x, p, sw, None, True, -1) for p, _, sw in stack],
                "rows16": lambda: [ext.linear_rows16(x, r, sw, None, n) for _, r, sw in stack]},
                repeats, min_seconds=0.3)
            rows.append({"K": k, "N": n, "M": m, "ms": {v: 1e3 * t for v, t in med.items()},
                         "rows16 / planes128": med["rows16"] / med["planes128"]})
            print(f"K={k:5d} N={n:5d} M={m:3d}  rows16 / planes128 = {rows[-1]['rows16 / planes128']:.2f}")
    return {"machine": machine(), "layers per stack": layers, "rows": rows,
            "command": "python experiments/rows16_layout.py --threads 2"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "book/artifacts/kernels/rows16_layout.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = run()
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

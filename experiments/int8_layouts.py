"""The CPU packed kernel's int8 weight layouts side by side: planes128 against this CPU's tile layout.

Usage: python experiments/int8_layouts.py [--threads 2] [--out FILE]

The tile layout is ``rows16`` on an AVX-512 VNNI CPU (default ``--out``
book/artifacts/kernels/rows16_layout.json) and ``rows8`` on an AVX2 one (rows8_layout.json): what
``ternlib.kernels.cpu.int8_layout()`` picks there. For each layer shape, a stack of 8 distinct layers (as a
model runs them, so weights come from memory rather than a warm cache) is run through the C++ extension's
two entry points, interleaved in one process: ``linear_small`` on ``planes128`` and ``linear_rows16`` or
``linear_rows8`` on the tile layout. Both are exact (checked here); the JSON holds medians (ms per stack)
and the ratio tile layout / planes128. Chapter 4 reads both files. Run it on a quiet machine (a few minutes).
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
# rows16 serves int8 calls up to the crossover (oneDNN's int8 GEMM above it); rows8 serves every size on AVX2
TOKENS = {"rows16": [1, 4, 8, 16, 32], "rows8": [1, 4, 8, 16, 32, 128, 1024]}


@torch.inference_mode()
def run(shapes=SHAPES, tokens=None, layers: int = 8, repeats: int = 15) -> dict:
    ext, layout = cpu_kernels.extension(), cpu_kernels.int8_layout()
    if layout not in TOKENS:
        raise SystemExit(f"no tile layout on this CPU (instruction set: {cpu_kernels.isa()}; int8 layout: {layout})")
    to_tiles = cpu_kernels.to_rows16 if layout == "rows16" else cpu_kernels.to_rows8
    tiled = ext.linear_rows16 if layout == "rows16" else ext.linear_rows8
    cfg = TernaryConfig(activations="int8")
    rows, key = [], f"{layout} / planes128"
    for k, n in shapes:
        stack = []
        for _ in range(layers):
            t = ternarize(torch.randn(n, k), cfg)
            sw = t.scales.reshape(-1).float().contiguous()
            stack.append((cpu_kernels.to_planes128(t.codes), to_tiles(t.codes), sw))
        for m in tokens or TOKENS[layout]:
            x = torch.randn(m, k)
            assert all(torch.equal(ext.linear_small(x, p, sw, None, True, -1), tiled(x, r, sw, None, n))
                       for p, r, sw in stack[:2])  # the same integers, the same epilogue: bit for bit
            med = interleaved({
                "planes128": lambda: [ext.linear_small(x, p, sw, None, True, -1) for p, _, sw in stack],
                layout: lambda: [tiled(x, r, sw, None, n) for _, r, sw in stack]},
                repeats, min_seconds=0.3)
            rows.append({"K": k, "N": n, "M": m, "ms": {v: 1e3 * t for v, t in med.items()},
                         key: med[layout] / med["planes128"]})
            print(f"K={k:5d} N={n:5d} M={m:5d}  {key} = {rows[-1][key]:.2f}", flush=True)
    return {"machine": machine(), "layout": layout, "layers per stack": layers, "rows": rows,
            "command": "python experiments/int8_layouts.py --threads 2"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None,
                    help="default: book/artifacts/kernels/<layout>_layout.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = run()
    out = args.out or ROOT / f"book/artifacts/kernels/{res['layout']}_layout.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()

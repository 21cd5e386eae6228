"""``ternlib bench``: ternary layers and the ternary MiniLM against FP32, bf16 and int8 dynamic quantization."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import add_threads

NAME = "bench"


def add_parser(sub) -> argparse.ArgumentParser:
    from ..bench import ENCODER_SHAPES

    p = sub.add_parser(
        NAME,
        help="time ternary layers and the ternary MiniLM against FP32, bf16, int8 dynamic quantization and "
        "ONNX Runtime (FP32 and int8)",
        description="Benchmark, every comparison interleaved in one process and reported as ratios of "
        "medians to FP32: one linear layer (MiniLM, BERT-base and ViT-B shapes at M = 1, 16, 128, 4096 "
        "tokens), the MiniLM encoder end to end (one short query; 512 sentences in batches of 64; with ONNX Runtime "
        "FP32 and int8 dynamic quantization when onnxruntime is installed: pip install 'ternlib[bench]'), and "
        "the checkpoint's storage. Example: ternlib bench --quick",
    )
    p.add_argument("--quick", action="store_true", help="two layer shapes and a short encoder run (under a minute)")
    p.add_argument("--checkpoint", help="ternary checkpoint for the encoder part (default: the FP32 model "
                   "ternarized by round-to-nearest: the same speed, since speed does not depend on the weights)")
    p.add_argument("--shapes", nargs="*", default=[], choices=[s for s in ENCODER_SHAPES if s != "minilm"],
                   help="also time random-weight encoders of these sizes end to end (speed does not depend on the "
                   "weights; MiniLM's tokenizer and pooling)")
    p.add_argument("--compile", action="store_true",
                   help="also time FP32 and the ternary model under torch.compile (inductor; compiles first, a minute "
                   "or more on 2 cores)")
    add_threads(p)
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--plot", help="write a PNG of the ratios here")
    return p


def run(args: argparse.Namespace) -> int:
    from .. import bench

    res = bench.run(quick=args.quick, checkpoint=args.checkpoint, threads=args.threads or None,
                    shapes=tuple(args.shapes), compiled=args.compile)
    print(bench.table(res))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"\nwrote {args.out}")
    if args.plot:
        bench.plot(res, args.plot)
        print(f"wrote {args.plot}")
    return 0

"""``ternlib export``: a ternary checkpoint as an int8 ONNX model for ONNX Runtime (``ternlib.export``)."""
from __future__ import annotations

import argparse
import json

NAME = "export"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(NAME, help="write a ternary checkpoint as an ONNX model for ONNX Runtime "
                                  "(codes as exact int8 initializers)")
    p.add_argument("path", help="checkpoint directory written by ternlib.save")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    return p


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load
    from ..export import export_ternary_onnx

    texts = ["How do ternary weights make an embedding model smaller?", "a short query", "and a third sentence"]
    try:
        report = export_ternary_onnx(load(args.path), args.out, check_texts=texts, opset=args.opset)
    except (ImportError, ValueError) as e:  # onnxruntime missing; group scales; a float model
        raise SystemExit(f"ternlib export: {e}") from None
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out}: serve it with ternlib.OrtEncoder(model, {args.out!r}, {report['inputs']}) "
          "or any ONNX Runtime session (inputs: the tokenizer's tensors; output: sentence_embedding)")
    return 0

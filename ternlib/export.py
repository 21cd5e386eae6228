"""Export a ternary SentenceTransformer to ONNX, so ONNX Runtime can serve it: codes as int8 initializers.

Every ternary layer's weight is ``scale * codes`` with one scale per tensor or per output row, so
ONNX Runtime's dynamic quantization with per-channel int8 weights stores it *exactly*: the
largest magnitude in each output column of the exported ``MatMul`` weight is the scale, and the
int8 weight is ``127 * codes``. :func:`export_ternary_onnx` exports the model's float weights,
quantizes them that way, and then checks the claim: every ternary layer's codes must appear,
times 127, as one int8 initializer of the file, or it raises. ONNX Runtime quantizes the
activations itself at run time (``DynamicQuantizeLinear``: uint8, one scale per tensor), not per
token as ternlib's int8 activations do, so the embeddings are close to, not equal to, ternlib's;
the returned report measures how close. The file holds 8 bits a weight, not ternlib's 2: the
format ONNX Runtime's integer kernels read.

Example:
    >>> import ternlib
    >>> from ternlib.export import export_ternary_onnx
    >>> model = ternlib.quantize_(ternlib.load_text_encoder(), ternlib.TernaryConfig(granularity="row"))
    >>> report = export_ternary_onnx(model, "/tmp/ternary.onnx")                 # doctest: +SKIP
    >>> report["ternary layers"], report["ternary layers in the graph"]           # doctest: +SKIP
    (37, 36)
    >>> enc = ternlib.OrtEncoder(model, "/tmp/ternary.onnx", report["inputs"])  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from .embedding import Int8Embedding
from .layers import TernaryLinear
from .serving import ORT_INSTALL, OrtEncoder, export_onnx, missing_onnxruntime


def float_copy(model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A copy of ``model`` with each ``TernaryLinear`` an ``nn.Linear`` holding its effective weight
    (``scale * codes``, float32) and each ``Int8Embedding`` an ``nn.Embedding``; also returns each
    ternary layer's codes ``(N, K)`` int8, by module name."""
    plain = copy.deepcopy(model).float().cpu().eval()
    codes: dict[str, torch.Tensor] = {}
    for name, module in list(plain.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, TernaryLinear):
                if child.config.scale_group_size is not None:
                    raise ValueError(f"{full}: scales per group of {child.config.scale_group_size} input columns "
                                     "have no exact per-channel int8 form; export needs one scale per tensor "
                                     "or per row (TernaryConfig(granularity='tensor' or 'row'))")
                lin = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                with torch.no_grad():
                    lin.weight.copy_(child.effective_weight())
                    if child.bias is not None:
                        lin.bias.copy_(child.bias.float())
                codes[full] = child.codes().cpu()
                setattr(module, child_name, lin)
            elif isinstance(child, Int8Embedding):
                emb = nn.Embedding.from_pretrained(child.weight.detach().float().clone(), freeze=True,
                                                   padding_idx=child.padding_idx)
                setattr(module, child_name, emb)
    return plain, codes


def _digest(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes() + str(a.shape).encode()).hexdigest()


def export_ternary_onnx(model: nn.Module, path: str | os.PathLike, check_texts: Sequence[str] | None = None,
                        opset: int = 17) -> dict[str, Any]:
    """Write ``model`` (a SentenceTransformer with ``TernaryLinear`` layers) to ``path`` as an int8 ONNX model.

    The float weights are exported (:func:`ternlib.serving.export_onnx`) and quantized by
    ``onnxruntime.quantization.quantize_dynamic`` with per-channel int8 weights; then every ternary
    layer's ``127 * codes`` (transposed, as ``MatMul`` stores it) must be found among the file's
    int8 initializers, else ``AssertionError``: the export stores the ternary weights exactly or
    fails. Returns a report: the input names (for :class:`ternlib.OrtEncoder`), the number of
    ternary layers and of those in the graph (all stored exactly; the exporter drops layers the
    embedding never reads, such as BERT's pooler), the file's bytes and, on ``check_texts``, the
    lowest cosine similarity between ONNX Runtime's embeddings and the model's own.
    """
    missing = missing_onnxruntime()
    if missing:
        raise ImportError(f"exporting to ONNX Runtime needs {' and '.join(missing)}: {ORT_INSTALL}")
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    plain, codes = float_copy(model)
    if not codes:
        raise ValueError("the model has no TernaryLinear layers; use ternlib.serving.export_onnx for a float model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ternlib-export-") as tmp:
        f32 = Path(tmp) / "float.onnx"
        names = export_onnx(plain, f32, opset=opset)
        root, level = logging.getLogger(), logging.getLogger().level
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root.setLevel(logging.ERROR)   # quantize_dynamic logs a pre-processing tip on the root logger
            try:
                quantize_dynamic(f32, path, per_channel=True, weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
        # the exporter drops layers the embedding does not use (BERT's pooler): check the layers the graph holds
        in_graph = {_digest(numpy_helper.to_array(t)) for t in onnx.load(str(f32)).graph.initializer
                    if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2}
        weights = {n: m.weight.detach().T.numpy() for n, m in plain.named_modules() if n in codes}
        n_ternary = len(codes)
        codes = {n: c for n, c in codes.items() if _digest(weights[n]) in in_graph}
    stored = {_digest(numpy_helper.to_array(t)) for t in onnx.load(str(path)).graph.initializer
              if t.data_type == onnx.TensorProto.INT8}
    missing = [n for n, c in codes.items() if _digest((c.to(torch.int8) * 127).T.numpy()) not in stored]
    if missing:
        raise AssertionError(f"{len(missing)} of {len(codes)} ternary layers are not stored exactly as int8 "
                             f"127 * codes in {path} (first: {missing[0]})")
    report: dict[str, Any] = {"inputs": names, "ternary layers": n_ternary, "ternary layers in the graph": len(codes),
                              "onnx bytes": path.stat().st_size, "opset": opset,
                              "quantization": "quantize_dynamic, per-channel QInt8 weights (127 * codes), "
                                              "activations uint8 per tensor at run time"}
    if check_texts:
        with torch.inference_mode():
            ref = model.encode(list(check_texts), convert_to_tensor=True, show_progress_bar=False).float().cpu()
        got = OrtEncoder(model, path, names).encode(list(check_texts), batch_size=64)
        report["min cosine to the model"] = float(torch.nn.functional.cosine_similarity(got, ref).min())
    return report

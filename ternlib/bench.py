"""Benchmarks: ternary layers and encoders against FP32, bf16, int8 dynamic quantization and ONNX Runtime.

Machines are noisy, so every comparison runs its variants **interleaved in one process** (each
repeat times every variant once, in a rotating order) and reports medians and ratios to FP32
measured side by side. Three parts:

- ``layers``: one linear layer, the shapes of MiniLM, BERT-base and ViT-B (ViT-B/16 has the
  same linear shapes as BERT-base), for M = 1, 16, 128, 4096 tokens;
- ``encoder``: the MiniLM sentence encoder, one short query and 512 sentences in batches of 64,
  every PyTorch model through :class:`~ternlib.serving.LeanEncoder` (tokenizer, then the network);
  with ``onnxruntime`` installed (``pip install onnxruntime onnx``, or the ``bench`` extra) also
  the same FP32 model exported to ONNX and run by ONNX Runtime, in FP32 and with ONNX Runtime's
  int8 dynamic quantization (per-channel int8 weights), the CPU peers a practitioner would pick;
- ``storage``: bytes of the saved files;
- ``roofs`` and ``split``: the machine's roofline (bandwidth, peak FP32 and int8 GEMM) and where
  the encoder's time goes (linear layers vs the rest), the data of chapter 4's Amdahl bound.

Command line: ``python -m ternlib bench [--quick] [--out bench.json] [--plot bench.png]``.

Example:
    >>> from ternlib.bench import interleaved
    >>> t = interleaved({"a": lambda: sum(range(100)), "b": lambda: sum(range(1000))}, repeats=5)
    >>> sorted(t), t["a"] < t["b"]
    (['a', 'b'], True)
"""
from __future__ import annotations

import copy
import os
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TernaryConfig
from .layers import TernaryLinear
from .serving import ORT_INSTALL, LeanEncoder, OrtEncoder, export_onnx, missing_onnxruntime

# (name, in_features K, out_features N)
LAYER_SHAPES = [
    ("MiniLM attn 384->384", 384, 384), ("MiniLM ffn-up 384->1536", 384, 1536),
    ("MiniLM ffn-down 1536->384", 1536, 384),
    ("BERT-base/ViT-B attn 768->768", 768, 768), ("BERT-base/ViT-B ffn-up 768->3072", 768, 3072),
    ("BERT-base/ViT-B ffn-down 3072->768", 3072, 768),
]
TOKENS = [1, 16, 128, 4096]
QUERY = "How do ternary weights make an embedding model smaller and faster?"
# encoders timed end to end: (hidden size, layers, attention heads, FFN size); None: all-MiniLM-L6-v2 itself
ENCODER_SHAPES: dict[str, tuple[int, int, int, int] | None] = {
    "minilm": None, "bert-base": (768, 12, 12, 3072), "bert-large": (1024, 24, 16, 4096)}


def shaped_encoder(shape: str) -> nn.Module:
    """all-MiniLM-L6-v2 as a SentenceTransformer, its transformer replaced by a **randomly initialised**
    BERT of the shape ``ENCODER_SHAPES[shape]`` (tokenizer, mean pooling and normalization kept).

    Speed depends on the shapes, not on the weights, so this times a BERT-base or BERT-large sized
    encoder with no download. Its embeddings mean nothing.

    Example:
        >>> enc = shaped_encoder("bert-base")                                 # doctest: +SKIP
        >>> enc[0].auto_model.config.num_hidden_layers                        # doctest: +SKIP
        12
    """
    from .models import load_text_encoder

    if shape not in ENCODER_SHAPES:
        raise ValueError(f"unknown encoder shape {shape!r}; known: {sorted(ENCODER_SHAPES)}")
    model = load_text_encoder().eval()
    dims = ENCODER_SHAPES[shape]
    if dims is None:
        return model
    from transformers import BertConfig, BertModel

    hidden, layers, heads, ffn = dims
    old = model[0].auto_model.config
    cfg = BertConfig(vocab_size=old.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=ffn, max_position_embeddings=old.max_position_embeddings)
    torch.manual_seed(0)
    # sentence-transformers >= 6 keeps the transformer as .model (auto_model is a read-only alias); older as .auto_model
    bert = BertModel(cfg, add_pooling_layer=False).eval()
    setattr(model[0], "model" if "model" in model[0]._modules else "auto_model", bert)
    model[1].word_embedding_dimension = hidden  # mean pooling reads no weight; its stated size follows the model
    return model


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int = 10, warmup: int = 2,
                min_seconds: float = 0.0) -> dict[str, float]:
    """Median seconds per call of each function, timed in rotating interleaved order.

    ``min_seconds`` keeps repeating (beyond ``repeats``) until that much time has passed, which
    steadies very short calls.
    """
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    start, r = time.perf_counter(), 0
    while r < repeats or time.perf_counter() - start < min_seconds:
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t0 = time.perf_counter()
            fns[n]()
            samples[n].append(time.perf_counter() - t0)
        r += 1
    return {n: statistics.median(v) for n, v in samples.items()}


def _dynamic_int8(module: nn.Module) -> nn.Module:
    """PyTorch's int8 dynamic quantization of every nn.Linear (fbgemm), the usual CPU baseline."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


def _ternary_layer(linear: nn.Linear, activations: str) -> TernaryLinear:
    return TernaryLinear.from_linear(linear, TernaryConfig(activations=activations)).freeze()


@torch.inference_mode()
def layer_bench(shapes=LAYER_SHAPES, tokens=TOKENS, repeats: int = 10, min_seconds: float = 0.3,
                progress: bool = True) -> list[dict[str, Any]]:
    """Per-layer medians (ms) and ratios to FP32 ``F.linear``, all variants interleaved."""
    from tqdm.auto import tqdm

    rows = []
    cases = [(s, m) for s in shapes for m in tokens]
    for (name, k, n), m in tqdm(cases, desc="layers", disable=not progress):
        g = torch.Generator().manual_seed(0)
        lin = nn.Linear(k, n)
        x = torch.randn(m, k, generator=g)  # (M, K)
        xb, wb, bb = x.bfloat16(), lin.weight.detach().bfloat16(), lin.bias.detach().bfloat16()
        dyn = _dynamic_int8(nn.Sequential(lin))
        t8, tf = _ternary_layer(lin, "int8"), _ternary_layer(lin, "float")
        w, b = lin.weight.detach(), lin.bias.detach()
        fns = {
            "fp32": lambda: F.linear(x, w, b),
            "bf16": lambda: F.linear(xb, wb, bb),
            "int8 dynamic": lambda: dyn(x),
            "ternary a8": lambda: t8(x),
            "ternary fp-act": lambda: tf(x),
        }
        reps = repeats if m < 4096 else max(3, repeats // 3)
        med = interleaved(fns, reps, min_seconds=min_seconds if m < 4096 else 0.0)
        from .kernels import select_kernel

        rows.append({"layer": name, "K": k, "N": n, "M": m,
                     "kernel a8": select_kernel(x, t8.packed_weight()).name,
                     "ms": {v: 1e3 * t for v, t in med.items()},
                     "ratio": {v: t / med["fp32"] for v, t in med.items()}})
    return rows


MINILM_STACK = [(384, 384)] * 4 + [(384, 1536), (1536, 384)]  # (K, N) of one MiniLM layer's linears


@torch.inference_mode()
def crossover_bench(stack=MINILM_STACK * 6, tokens=(1, 4, 8, 16, 24, 32, 40, 48, 64, 128, 256), repeats: int = 7,
                    progress: bool = True) -> dict[str, Any]:
    """Packed (small-M) against unpacked (large-M) CPU kernel, int8 activations: where they cross.

    Each repeat runs a whole stack of distinct layers (by default the 36 linears of MiniLM), as a
    model does, so every weight comes from memory rather than a warm cache; a single layer called
    in a loop would flatter the kernel whose weight is bigger (its copy stays in cache).
    """
    from tqdm.auto import tqdm

    from .kernels import set_crossover, ternary_linear

    layers = [_ternary_layer(nn.Linear(k, n), "int8") for k, n in stack]
    weights = [(layer.packed_weight(), layer.bias) for layer in layers]
    rows, best = [], None
    set_crossover(10**9)
    try:
        for m in tqdm(tokens, desc="crossover", disable=not progress):
            xs = {k: torch.randn(m, k) for k in {k for k, _ in stack}}

            def run(kernel):
                for (w, b), (k, _) in zip(weights, stack):
                    ternary_linear(xs[k], w, b, kernel)

            med = interleaved({"cpu_packed": lambda: run("cpu_packed"), "cpu_unpacked": lambda: run("cpu_unpacked")},
                              repeats, min_seconds=0.2)
            rows.append({"M": m, "ms": {n_: 1e3 * t for n_, t in med.items()}})
            if med["cpu_packed"] <= med["cpu_unpacked"]:
                best = m
    finally:
        set_crossover(None)
    return {"stack": f"{len(stack)} layers, K->N " + ", ".join(f"{k}->{n}" for k, n in dict.fromkeys(stack)),
            "rows": rows, "largest M where packed wins": best}


def _sentences(n: int) -> list[str]:
    try:
        from .data.corpus import training_sentences

        return training_sentences(n, seed=1, min_words=8, max_words=40)
    except (FileNotFoundError, ImportError):  # the Brown corpus is not installed: varied synthetic text
        import random

        words = ("ternary weights make small fast embedding models for search over large text collections "
                 "with little loss in quality when the student learns from its teacher").split()
        rng = random.Random(1)
        return [" ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) for _ in range(n)]


def _ternary_encoder(fp32: nn.Module, checkpoint: str | os.PathLike | None, activations: str) -> tuple[nn.Module, str]:
    """The ternary MiniLM the benchmarks time, and where it came from: the checkpoint if there is one,
    else the FP32 model ternarized by round-to-nearest (speed does not depend on training)."""
    from .checkpoint import CONFIG_FILE, load
    from .embedding import Int8EmbeddingConfig
    from .quantize import freeze_, quantize_

    if checkpoint:
        ckpt = Path(checkpoint)
        if not (ckpt / CONFIG_FILE).exists():
            raise FileNotFoundError(f"{ckpt} is not a ternlib checkpoint (no ternlib.json): pass a directory "
                                    "written by ternlib.save, or no checkpoint to time a round-to-nearest copy")
        return load(ckpt, activations=activations), str(ckpt)
    model = quantize_(copy.deepcopy(fp32), TernaryConfig(activations=activations))
    quantize_(model, Int8EmbeddingConfig(min_rows=1000))
    return freeze_(model), "round-to-nearest ternarization of the FP32 model"


ST_ENCODE_VARIANT = "ternary a8, model.encode"  # the ternary model through SentenceTransformer.encode
ENCODE_NOTE = ("PyTorch rows: ternlib.LeanEncoder (the model's tokenizer, then a lean forward pass); "
               "ONNX Runtime rows: ternlib.OrtEncoder (the same tokenizer, then session.run); '"
               + ST_ENCODE_VARIANT + "': the ternary model's own SentenceTransformer.encode (per-call bookkeeping "
               "included)")
ORT_VARIANTS = ["ort fp32", "ort int8"]  # ONNX Runtime rows of the encoder benchmark, when onnxruntime is installed
COMPILED_VARIANTS = ["fp32 compiled", "ternary a8 compiled"]  # torch.compile rows (encoder_bench(compiled=True))
BF16_VARIANT = "ternary fp-act, bf16 model"  # the float-activation ternary model cast to bf16, like the bf16 row


def onnxruntime_missing() -> str | None:
    """None when ``onnxruntime`` and ``onnx`` import, else a message that says how to install them."""
    missing = missing_onnxruntime()
    if not missing:
        return None
    return f"{' and '.join(missing)} not installed, so the ONNX Runtime rows were skipped; to add them: {ORT_INSTALL}"


def ort_encoders(fp32: nn.Module, folder: str | os.PathLike, check_texts: list[str], threads: int | None = None,
                 atol: float = 1e-4) -> tuple[dict[str, OrtEncoder], dict[str, Any]]:
    """ONNX Runtime FP32 and int8 copies of the FP32 SentenceTransformer ``fp32``, files written under ``folder``.

    The FP32 export must reproduce torch's embeddings of ``check_texts`` within ``atol`` (else
    ``AssertionError``). The int8 copy is ``onnxruntime.quantization.quantize_dynamic`` with
    per-channel int8 weights (activations quantized at run time, as PyTorch's dynamic quantization).
    Returns the encoders and a description (versions, file sizes, the export's largest difference).
    """
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    f32, i8 = folder / "encoder_fp32.onnx", folder / "encoder_int8.onnx"
    names = export_onnx(fp32, f32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(f32, i8, per_channel=True, weight_type=QuantType.QInt8)
    encoders = {"ort fp32": OrtEncoder(fp32, f32, names, threads), "ort int8": OrtEncoder(fp32, i8, names, threads)}
    with torch.inference_mode():
        ref = fp32.encode(check_texts, batch_size=64, convert_to_tensor=True, show_progress_bar=False).float()
    diff = float((encoders["ort fp32"].encode(check_texts, batch_size=64) - ref).abs().max())
    if not diff <= atol:
        raise AssertionError(f"the ONNX export of the FP32 model disagrees with torch: largest difference {diff:.2e} "
                             f"> {atol:g} over {len(check_texts)} sentences")
    return encoders, {"onnxruntime": onnxruntime.__version__, "intra-op threads":
                      encoders["ort fp32"].session.get_session_options().intra_op_num_threads,
                      "fp32 onnx bytes": f32.stat().st_size, "int8 onnx bytes": i8.stat().st_size,
                      "int8 quantization": "quantize_dynamic, per-channel QInt8 weights",
                      "max abs diff ort fp32 vs torch fp32": diff}


class _ModelEncode:
    """A SentenceTransformer timed through its own ``encode``, as a user calling ``model.encode`` runs it."""

    def __init__(self, model: nn.Module):
        self.model = model

    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        return self.model.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)


@torch.inference_mode()
def compiled_encoder(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """A copy of a SentenceTransformer whose transformer runs under ``torch.compile`` (inductor, dynamic
    shapes). Ternary layers enter the graph as ``torch.ops.ternlib.ternary_linear`` (:mod:`ternlib.kernels.ops`);
    the attention, layer norms and GELU around them are compiled and fused."""
    c = copy.deepcopy(model)
    attr = "model" if "model" in c[0]._modules else "auto_model"  # sentence-transformers >= 5 calls it model
    setattr(c[0], attr, torch.compile(getattr(c[0], attr), dynamic=True, backend=backend))
    return c


def encoder_bench(checkpoint: str | os.PathLike | None = None, n_sentences: int = 512, batch_size: int = 64,
                  repeats: int = 5, query_repeats: int = 30, progress: bool = True,
                  onnxruntime: bool = True, shape: str = "minilm", compiled: bool = False) -> dict[str, Any]:
    """End to end MiniLM: FP32 against bf16, int8 dynamic, the ternary checkpoint (a8, fp-act, and fp-act cast to
    bf16 as the bf16 row is: :data:`BF16_VARIANT`) and,
    with ``onnxruntime`` (installed and not turned off), ONNX Runtime FP32 and int8 (:func:`ort_encoders`).

    Every PyTorch model is timed through :class:`~ternlib.serving.LeanEncoder` and every ONNX Runtime
    one through :class:`~ternlib.serving.OrtEncoder`: both pay the same tokenizer and then only the
    network, so the rows differ in what runs the network. One more row, ``"ternary a8, model.encode"``,
    times the ternary model through ``SentenceTransformer.encode`` (what ``model.encode(texts)`` costs).

    ``shape`` times a random-weight encoder of another size instead (:func:`shaped_encoder`:
    ``"bert-base"``, ``"bert-large"``); its ternary rows are then a round-to-nearest copy, and a
    ``checkpoint`` is refused (it has MiniLM's shapes).

    Without onnxruntime the other rows run, a warning says how to install it, and the result's
    ``"onnxruntime"`` entry says that the rows were skipped.

    ``compiled`` adds FP32 and the ternary model (int8 activations) with their transformer under
    ``torch.compile`` (inductor, dynamic shapes; the ternary layers as the custom operator of
    :mod:`ternlib.kernels.ops`), compiled before the timings (``"compile seconds"``).
    """
    import tempfile

    if shape != "minilm" and checkpoint:
        raise ValueError(f"a checkpoint has MiniLM's shapes: time shape={shape!r} without one (random weights)")
    fp32 = shaped_encoder(shape)
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    dyn = _dynamic_int8(copy.deepcopy(fp32))
    (t8, source), (tf, _) = (_ternary_encoder(fp32, checkpoint, act) for act in ("int8", "float"))
    models: dict[str, Any] = {name: LeanEncoder(m) for name, m in (
        ("fp32", fp32), ("bf16", bf16), ("int8 dynamic", dyn), ("ternary a8", t8), ("ternary fp-act", tf),
        (BF16_VARIANT, copy.deepcopy(tf).to(torch.bfloat16)))}
    models[ST_ENCODE_VARIANT] = _ModelEncode(t8)
    sents = _sentences(n_sentences)

    out: dict[str, Any] = {"shape": shape, "weights": "pretrained" if shape == "minilm" else "random (speed only)",
                           "ternary source": source, "workloads": [], "encode": ENCODE_NOTE,
                           "pytorch forward": models["ternary a8"].architecture}
    if compiled:
        from torch._dynamo.utils import counters

        torch._dynamo.reset()  # an earlier size's graphs count against dynamo's recompile limit (then: eager)
        out["compile seconds"], out["compiled graphs"] = {}, {}
        for name, model in (("fp32", fp32), ("ternary a8", t8)):
            t0, graphs = time.perf_counter(), counters["stats"]["unique_graphs"]
            models[f"{name} compiled"] = c = LeanEncoder(compiled_encoder(model), lean=False)
            for texts, bs in (([QUERY], 1), (sents[:batch_size], batch_size), (sents[-batch_size // 2:], batch_size)):
                c.encode(texts, batch_size=bs)  # compile now (dynamic shapes: one graph for every batch and length)
            out["compile seconds"][name] = round(time.perf_counter() - t0, 1)
            out["compiled graphs"][name] = counters["stats"]["unique_graphs"] - graphs  # 0: it fell back to eager
            if not out["compiled graphs"][name]:
                raise RuntimeError(f"torch.compile produced no graph for {name} at shape {shape!r}")
    missing = onnxruntime_missing() if onnxruntime else "turned off (onnxruntime=False)"
    with tempfile.TemporaryDirectory(prefix="ternlib-onnx-") as tmp:
        if missing is None:
            ort_models, out["onnxruntime"] = ort_encoders(fp32, tmp, sents[:64])
            models.update(ort_models)
        else:
            if onnxruntime:
                warnings.warn(missing, stacklevel=2)
            out["onnxruntime"] = {"skipped": missing}
        _encoder_timings(models, sents, n_sentences, batch_size, repeats, query_repeats, out)
    return out


def _encoder_timings(models: dict[str, Any], sents: list[str], n_sentences: int, batch_size: int, repeats: int,
                     query_repeats: int, out: dict[str, Any]) -> None:
    """The two encoder workloads, every model interleaved, and each model's cosine to FP32, into ``out``."""
    fp32 = models["fp32"]
    work = [("one query", [QUERY], 1, query_repeats),
            (f"{n_sentences} sentences, batch {batch_size}", sents, batch_size, repeats)]
    for label, texts, bs, reps in work:
        med = interleaved({name: (lambda m=m: m.encode(texts, batch_size=bs)) for name, m in models.items()}, reps,
                          warmup=1, min_seconds=1.0 if len(texts) == 1 else 0.0)
        out["workloads"].append({"workload": label, "ms": {k: 1e3 * v for k, v in med.items()},
                                 "ratio": {k: v / med["fp32"] for k, v in med.items()}})
    ref = fp32.encode(sents[:64], batch_size=64).float()
    out["cosine to fp32 (first 64 sentences)"] = {
        name: float(F.cosine_similarity(m.encode(sents[:64], batch_size=64).float(), ref).mean())
        for name, m in models.items()}


@torch.inference_mode()
def roofs(copy_mb: int = 256, shape: tuple[int, int, int] = (4096, 768, 3072), repeats: int = 3) -> dict[str, float]:
    """This machine's roofline: memory bandwidth (a large copy) and peak FP32 / int8 GEMM throughput (PyTorch's
    int8 GEMM, or ternlib's packed kernel where PyTorch's is its scalar fallback: ``"int8 gemm"`` says which)."""
    from .kernels import cpu as cpu_kernels

    n = copy_mb * 2**20 // 4
    src, dst = torch.randn(n), torch.empty(n)
    t_copy = interleaved({"copy": lambda: dst.copy_(src)}, repeats=max(repeats, 5))["copy"]
    m, k, nn_ = shape
    x, w = torch.randn(m, k), torch.randn(nn_, k)
    xq = torch.randint(-127, 128, (m, k), dtype=torch.int8)
    wq = torch.randint(-1, 2, (k, nn_), dtype=torch.int8)
    if cpu_kernels.int_mm_fast() or cpu_kernels.extension() is None:
        int8, how = (lambda: torch._int_mm(xq, wq)), "torch._int_mm"
    else:  # PyTorch's int8 GEMM is its scalar fallback here: the int8 GEMM this CPU has is ternlib's own
        layer = _ternary_layer(nn.Linear(k, nn_, bias=False), "int8")
        int8, how = (lambda: cpu_kernels.cpu_packed_kernel(x, layer.packed_weight(), None)), "ternlib cpu_packed"
    t = interleaved({"fp32": lambda: F.linear(x, w), "int8": int8}, repeats)
    return {"bandwidth bytes/s": 2 * n * 4 / t_copy, "fp32 ops/s": 2 * m * k * nn_ / t["fp32"],
            "int8 ops/s": 2 * m * k * nn_ / t["int8"], "int8 gemm": how, "gemm shape": list(shape)}


def linear_time_split(model: nn.Module, texts: list[str], batch_size: int = 64) -> dict[str, float]:
    """Seconds of ``model.encode(texts)`` spent in its linear layers (nn.Linear or TernaryLinear) and elsewhere."""
    spent, start = [0.0], {}
    linears = [m for m in model.modules() if isinstance(m, (nn.Linear, TernaryLinear))]

    def pre(m, args):
        start[m] = time.perf_counter()

    def post(m, args, y):
        spent[0] += time.perf_counter() - start[m]

    hooks = [m.register_forward_pre_hook(pre) for m in linears] + [m.register_forward_hook(post) for m in linears]
    try:
        t0 = time.perf_counter()
        model.encode(texts, batch_size=batch_size, show_progress_bar=False)
        total = time.perf_counter() - t0
    finally:
        for h in hooks:
            h.remove()
    return {"total s": total, "linear s": spent[0], "other s": total - spent[0]}


@torch.inference_mode()
def split_bench(checkpoint: str | os.PathLike | None = None, n_sentences: int = 256,
                repeats: int = 3) -> dict[str, Any]:
    """Where the encoder's time goes (linear layers vs everything else), FP32 and ternary (a8), medians."""
    from .models import load_text_encoder

    fp32 = load_text_encoder().eval()
    ternary, _ = _ternary_encoder(fp32, checkpoint, "int8")
    texts = _sentences(n_sentences)
    out: dict[str, Any] = {"sentences": n_sentences}
    for _name, model in (("fp32", fp32), ("ternary a8", ternary)):
        model.encode(texts[:8], batch_size=64, show_progress_bar=False)
    runs = {"fp32": [], "ternary a8": []}
    for _ in range(repeats):  # interleaved
        for name, model in (("fp32", fp32), ("ternary a8", ternary)):
            runs[name].append(linear_time_split(model, texts))
    for name, rs in runs.items():
        out[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    return out


def storage_bench(checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """Bytes on disk: the FP32 MiniLM weights against the ternary checkpoint's files."""
    from .models import resolve_text_model

    out: dict[str, Any] = {}
    src = Path(resolve_text_model(None))
    fp = sorted(src.glob("*.safetensors")) if src.is_dir() else []
    if fp:
        out["fp32 safetensors bytes"] = sum(p.stat().st_size for p in fp)
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and (ckpt / "ternlib.safetensors").exists():
        out["ternary checkpoint bytes"] = sum(p.stat().st_size for p in ckpt.iterdir() if p.is_file())
        if fp:
            out["ratio"] = out["ternary checkpoint bytes"] / out["fp32 safetensors bytes"]
    return out


def machine() -> dict[str, Any]:
    from .kernels import cpu as cpu_kernels

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "packed kernel isa": cpu_kernels.isa(), "packed int8 layout": cpu_kernels.int8_layout(),
            "torch int8 gemm fast": cpu_kernels.int_mm_fast(),
            "python": platform.python_version()}


def run(quick: bool = False, checkpoint: str | os.PathLike | None = None, threads: int | None = None,
        progress: bool = True, shapes: tuple[str, ...] = (), compiled: bool = False) -> dict[str, Any]:
    """The whole benchmark; ``quick`` (under a minute) keeps two layer shapes and a short encoder run.
    ``shapes`` (e.g. ``("bert-base", "bert-large")``) adds end-to-end runs of random-weight encoders of
    those sizes under ``"encoder shapes"`` (128 sentences in batches of 32; a quick run: 16). ``compiled``
    adds the ``torch.compile`` rows to every encoder run (:func:`encoder_bench`)."""
    if threads:
        torch.set_num_threads(threads)
    res: dict[str, Any] = {"machine": machine(), "quick": quick}
    if quick:
        res["layers"] = layer_bench([LAYER_SHAPES[1], LAYER_SHAPES[4]], [1, 128], repeats=5, min_seconds=0.1,
                                    progress=progress)
        res["encoder"] = encoder_bench(checkpoint, n_sentences=64, repeats=3, query_repeats=10, progress=progress,
                                       compiled=compiled)
    else:
        res["roofs"] = roofs()
        res["layers"] = layer_bench(progress=progress)
        res["crossover"] = crossover_bench(progress=progress)
        res["encoder"] = encoder_bench(checkpoint, progress=progress, compiled=compiled)
        res["split"] = split_bench(checkpoint)
    for shape in shapes:
        if shape != "minilm":
            res.setdefault("encoder shapes", {})[shape] = encoder_bench(
                None, n_sentences=16 if quick else 128, batch_size=16 if quick else 32, repeats=3,
                query_repeats=5 if quick else 10, progress=progress, shape=shape, compiled=compiled)
    res["storage"] = storage_bench(checkpoint)
    return res


VARIANTS = ["bf16", "int8 dynamic", "ternary a8", "ternary fp-act"]  # the variants besides FP32, layers and encoder
_COLOR_ORDER = VARIANTS + ORT_VARIANTS + COMPILED_VARIANTS + [ST_ENCODE_VARIANT, BF16_VARIANT]  # C0..C9 in plots


def encoder_variants(res: dict[str, Any]) -> list[str]:
    """The encoder benchmark's variants besides FP32: :data:`VARIANTS`, then the ONNX Runtime and compiled
    ones it ran."""
    work = res.get("encoder", {}).get("workloads", [])
    return VARIANTS + [v for v in [BF16_VARIANT, ST_ENCODE_VARIANT] + ORT_VARIANTS + COMPILED_VARIANTS
                       if work and v in work[0]["ratio"]]


def table(res: dict[str, Any]) -> str:
    """Markdown tables of the ratios (variant time / FP32 time, lower is faster)."""
    variants = VARIANTS
    lines = ["| layer | M | fp32 ms | " + " | ".join(variants) + " | kernel (a8) |",
             "|---|---:|---:|" + "---:|" * len(variants) + "---|"]
    for r in res.get("layers", []):
        lines.append(f"| {r['layer']} | {r['M']} | {r['ms']['fp32']:.3f} | "
                     + " | ".join(f"{r['ratio'][v]:.2f}x" for v in variants) + f" | {r['kernel a8']} |")
    variants = encoder_variants(res)
    lines += ["", "| encoder workload | fp32 ms | " + " | ".join(variants) + " |",
              "|---|---:|" + "---:|" * len(variants)]
    for w in res.get("encoder", {}).get("workloads", []):
        lines.append(f"| {w['workload']} | {w['ms']['fp32']:.1f} | "
                     + " | ".join(f"{w['ratio'][v]:.2f}x" for v in variants) + " |")
    for shape, enc in res.get("encoder shapes", {}).items():
        for w in enc["workloads"]:
            lines.append(f"| {shape} ({enc['weights']}): {w['workload']} | {w['ms']['fp32']:.1f} | "
                         + " | ".join(f"{w['ratio'][v]:.2f}x" if v in w["ratio"] else "" for v in variants) + " |")
    skipped = res.get("encoder", {}).get("onnxruntime", {}).get("skipped")
    if skipped:
        lines += ["", f"ONNX Runtime: {skipped}"]
    st = res.get("storage", {})
    if "ratio" in st:
        lines += ["", f"storage: ternary checkpoint {st['ternary checkpoint bytes'] / 2**20:.1f} MiB, "
                      f"FP32 {st['fp32 safetensors bytes'] / 2**20:.1f} MiB ({st['ratio']:.3f}x)"]
    if "crossover" in res:
        lines += ["", f"crossover (packed vs unpacked kernel over {res['crossover']['stack']}): packed wins up to "
                      f"M = {res['crossover']['largest M where packed wins']}"]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: str | os.PathLike) -> None:
    """Ratio bars: per layer (one panel per M) and end to end; the legend sits beside the panels, off the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = res.get("layers", [])
    ms = sorted({r["M"] for r in layers})
    fig, axes = plt.subplots(1, len(ms) + 1, figsize=(4 * (len(ms) + 1), 4.6), squeeze=False)

    def bars(ax, rows, variants, labels):
        width = 0.8 / len(variants)
        for i, v in enumerate(variants):
            ax.bar([j + i * width for j in range(len(rows))], [r["ratio"][v] for r in rows], width, label=v,
                   color=f"C{_COLOR_ORDER.index(v)}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        ax.axhline(1.0, color="k", lw=0.8)

    for ax, m in zip(axes[0], ms):
        rows = [r for r in layers if r["M"] == m]
        bars(ax, rows, VARIANTS, [f"{r['K']}->{r['N']}" for r in rows])
        ax.set_title(f"one layer, M = {m}")
        ax.set_ylabel("time / FP32 time")
    ax = axes[0][-1]
    work = res.get("encoder", {}).get("workloads", [])
    variants = encoder_variants(res)
    bars(ax, work, variants, [w["workload"] for w in work])
    ax.set_title("MiniLM encoder, end to end")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)  # beside the last panel, on no bar
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)

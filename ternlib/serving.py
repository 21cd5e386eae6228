"""Serving a sentence encoder: ``encode`` without the per-call bookkeeping, by PyTorch or ONNX Runtime.

``SentenceTransformer.encode`` is built for every case (prompts, devices, multi-process pools):
on each call it puts every module in eval mode and checks the device of every parameter and
buffer, a millisecond or two on a 2-core CPU, a large share of a short query's time.
Hugging Face's BERT adds its own Python: a dozen module calls per layer. A server encoding one
query at a time pays all of it. Two encoders here pay only the tokenizer and the network:

- :class:`LeanEncoder` runs a SentenceTransformer with PyTorch. For a BERT-family encoder it runs
  its own forward pass over the model's own layers (query, key and value fused into one linear
  layer, one attention call, two layer norms a layer; a padded batch's padding skipped by every
  layer but attention); any other architecture runs its modules.
  Ternary layers run their kernels as usual, so the embeddings are the model's.
- :class:`OrtEncoder` runs the same model exported to ONNX (:func:`export_onnx`) by ONNX Runtime.

Both share :class:`BatchEncoder`'s ``encode``: texts sorted by length and batched as
``SentenceTransformer.encode`` does, embeddings returned in the order of the texts.

Example:
    >>> import ternlib
    >>> enc = ternlib.LeanEncoder(ternlib.load_text_encoder())   # or ternlib.load("a-ternary-checkpoint/")
    >>> enc.architecture, enc.encode(["a query", "and a document"]).shape
    ('lean BERT', torch.Size([2, 384]))
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .kernels import PackedTernary, ternary_linear
from .layers import TernaryLinear


def features(model: nn.Module, texts: Sequence[str], quiet: bool = False) -> dict[str, torch.Tensor]:
    """The tensors a SentenceTransformer's tokenizer makes of ``texts`` (input ids, masks), as ``encode`` makes them.

    ``quiet`` silences transformers' logging meanwhile (it costs about 50 us a call, a quarter of tokenizing a query).
    """
    from .models import quiet_hf

    prepare = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers >= 6 / older
    with quiet_hf(quiet):
        feats = prepare(list(texts))
    return {k: v for k, v in feats.items() if torch.is_tensor(v)}


class BatchEncoder:
    """``encode(texts)`` by length-sorted batches; a subclass says how one batch of texts becomes embeddings."""

    def embed(self, texts: list[str]) -> torch.Tensor | np.ndarray:  # (B, d)
        raise NotImplementedError

    def encode(self, texts: Sequence[str], batch_size: int = 32, convert_to_tensor: bool = True,
               show_progress_bar: bool = False, convert_to_numpy: bool = False,
               normalize_embeddings: bool = False) -> torch.Tensor | np.ndarray:
        """Embeddings of ``texts``, ``(len(texts), d)`` float32, rows in the order of ``texts`` (as
        ``SentenceTransformer.encode(texts, convert_to_tensor=...)``); a tensor, else (or with
        ``convert_to_numpy=True``) a NumPy array, rows scaled to unit norm with ``normalize_embeddings``."""
        from tqdm.auto import tqdm

        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list: encode([text])")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        texts, as_numpy = list(texts), convert_to_numpy or not convert_to_tensor
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        parts: list[torch.Tensor] = []
        for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=not show_progress_bar):
            emb = self.embed([texts[i] for i in order[start:start + batch_size]])
            parts.append(torch.as_tensor(emb).float().cpu())
        if not parts:
            return np.empty((0, 0), np.float32) if as_numpy else torch.empty(0, 0)
        out = torch.empty(len(texts), parts[0].shape[1])
        out[torch.tensor(order)] = torch.cat(parts)
        if normalize_embeddings:
            out = torch.nn.functional.normalize(out, dim=-1)
        return out.numpy() if as_numpy else out


# ------------------------------------------------------------------------------------------- PyTorch

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}


def _transformer(model: nn.Module) -> nn.Module | None:
    """The Hugging Face model inside a SentenceTransformer's first module, or None."""
    return getattr(model[0], "auto_model", None)  # sentence-transformers >= 6: an alias of .model


def _fused_qkv(q: nn.Module, k: nn.Module, v: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """One linear layer computing ``cat([q(x), k(x), v(x)], -1)``: rows of the three weights stacked.

    Frozen ternary layers stack their packed codes (rows) and per-row scales, so each output equals the
    separate layer's exactly (every row is computed alone; int8 activations are quantized per token, the
    same for the three). ``nn.Linear`` layers stack their weights. Anything else: the three calls.
    """
    layers = (q, k, v)
    ternary = all(isinstance(m, TernaryLinear) and m.frozen for m in layers)
    biases = [m.bias for m in layers] if ternary or all(type(m) is nn.Linear for m in layers) else None
    if biases is not None and (all(b is None for b in biases) or all(b is not None for b in biases)):
        bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])  # (3N,)
        if not ternary:
            weight = torch.cat([m.weight.detach() for m in layers])  # (3N, K)
            return lambda x: F.linear(x, weight, bias)
        cfgs = [m.config for m in layers]
        if all(c.packing == cfgs[0].packing and c.activations == cfgs[0].activations and c.scale_group_size is None
               for c in cfgs) and len({m.in_features for m in layers}) == 1:
            packed = torch.cat([m.packed for m in layers])  # (3N, K/4): packing is row by row
            scales = torch.cat([m.scales.float().reshape(-1, 1).expand(m.out_features, 1) for m in layers])  # (3N, 1)
            w = PackedTernary(packed, scales.contiguous(), (sum(m.out_features for m in layers), q.in_features),
                              cfgs[0].packing, None, cfgs[0].activations)
            kernel = q.kernel
            return lambda x: ternary_linear(x, w, bias, kernel)
    return lambda x: torch.cat([q(x), k(x), v(x)], dim=-1)


def _linear(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``m``'s forward without ``nn.Module.__call__``: a frozen ternary layer straight to its kernel dispatch, an
    ``nn.Linear`` to ``F.linear``, read from the layer at every call (so later changes to it are seen); anything
    else the module itself. At a query's few tokens the skipped Python is a measurable share of a layer's time."""
    if isinstance(m, TernaryLinear) and m.frozen:
        return lambda x: ternary_linear(x, m.packed_weight(), m.bias, m.kernel)
    if type(m) is nn.Linear:
        return lambda x: F.linear(x, m.weight, m.bias)
    return m


# Up to this many tokens a sequence's attention on the CPU (float32) is two batched matmuls and a softmax, above it
# PyTorch's fused kernel: at MiniLM's 12 heads of 32, batch 64, the matmuls took 0.31x-0.72x SDPA's time at 8-48
# tokens, 0.81x at 64 and 1.95x at 96 (experiments/attention_crossover.py, book/artifacts/kernels/lean_attention.json;
# it prints the comparison on any machine).
MATMUL_ATTENTION_MAX_TOKENS = 48
ATTENTION_GROUP = 16  # sequences per attention call in a padded batch (see _Tokens)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Softmax attention ``softmax(q k^T / sqrt(D) + bias) v``: (B, H, T, D) x3 and an additive (B, 1, 1, T) mask
    (0 for keys that take part, -inf for padding) or None -> (B, H, T, D).

    Short float32 sequences on the CPU take the two-matmul form (:data:`MATMUL_ATTENTION_MAX_TOKENS`),
    everything else ``F.scaled_dot_product_attention``; both compute the same function.

    Example:
        >>> q = k = v = torch.randn(2, 4, 5, 8)
        >>> torch.allclose(attention(q, k, v, None), F.scaled_dot_product_attention(q, k, v), atol=1e-6)
        True
    """
    if q.device.type == "cpu" and q.dtype == torch.float32 and q.shape[-2] <= MATMUL_ATTENTION_MAX_TOKENS:
        s = torch.matmul(q, k.transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)  # (B, H, T, T)
        if bias is not None:
            s.add_(bias)
        return torch.matmul(s.softmax(-1), v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def key_bias(real: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive attention mask of padded sequences: (B, T) bool, True for real tokens -> (B, 1, 1, T),
    0 where a key takes part and -inf at padding (what :func:`attention` and SDPA take).

    Example:
        >>> key_bias(torch.tensor([[True, False]]), torch.float32).flatten().tolist()
        [0.0, -inf]
    """
    return torch.zeros(real.shape[0], 1, 1, real.shape[1], dtype=dtype, device=real.device).masked_fill_(
        ~real[:, None, None, :], float("-inf"))


class _Tokens:
    """Where a padded batch's real tokens sit: the lean forward runs its row-wise layers (linear layers, GELU, layer
    norms) on the real tokens only, ``(N, C)`` rows, and lays them out as padded sequences for attention alone.

    A length-sorted batch of 64 sentences is still about 30% padding (the benchmark's 512 sentences), work
    that every row-wise layer would otherwise do and throw away. Attention runs on groups of
    :data:`ATTENTION_GROUP` sequences of similar length, each padded only to its own longest, since
    its cost grows with the square of the padded length. Each real token's values are the padded
    forward's: rows are computed on their own (int8 activations are quantized per token) and padded
    keys take no part in attention.
    """

    def __init__(self, mask: torch.Tensor, dtype: torch.dtype, skip_padding: bool = True):  # mask (B, T): 1 = real
        self.b, self.t = mask.shape
        self.keep: torch.Tensor | None = None  # (N,) flat indices (b * T + t) of the real tokens; None: every token
        self.bias: torch.Tensor | None = None  # (B, 1, 1, T) padded keys' mask when the padding is kept
        self.groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        if bool(mask.all()):
            return
        mask = mask.bool()
        if not skip_padding:  # every row computed, padded ones too; one attention call for the whole batch
            self.bias = key_bias(mask, dtype)
            return
        self.keep = mask.reshape(-1).nonzero().squeeze(1)
        lens = mask.sum(1)  # (B,)
        first = torch.cumsum(lens, 0) - lens  # (B,) the row of each sequence's first token
        for seqs in torch.argsort(lens, descending=True, stable=True).split(ATTENTION_GROUP):
            n = lens[seqs]
            pos = torch.arange(int(n.max()), device=mask.device)
            real = pos[None, :] < n[:, None]  # (S, t)
            rows = (first[seqs, None] + torch.where(real, pos[None, :], 0)).reshape(-1)  # padding reads a real row
            at = real.reshape(-1).nonzero().squeeze(1)  # the group's real positions ...
            self.groups.append((rows, key_bias(real, dtype), at, rows[at]))  # ... and their rows

    def rows(self, h: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (N, C)
        h = h.reshape(self.b * self.t, h.shape[-1])
        return h if self.keep is None else h.index_select(0, self.keep)

    def padded(self, x: torch.Tensor) -> torch.Tensor:  # (N, C) -> (B, T, C), zeros at padding
        if self.keep is not None:
            x = x.new_zeros(self.b * self.t, x.shape[-1]).index_copy_(0, self.keep, x)
        return x.view(self.b, self.t, x.shape[-1])

    def attend(self, qkv: torch.Tensor, heads: int) -> torch.Tensor:  # (N, 3C) -> (N, C)
        """Multi-head attention of each sequence's real tokens, from their fused query, key and value rows."""
        c = qkv.shape[-1] // 3
        if self.keep is None:
            q, k, v = qkv.view(self.b, self.t, 3, heads, c // heads).permute(2, 0, 3, 1, 4)  # (B, H, T, D) each
            return attention(q, k, v, self.bias).transpose(1, 2).reshape(-1, c)
        out = qkv.new_empty(qkv.shape[0], c)
        for rows, bias, at, dest in self.groups:
            s, t = bias.shape[0], bias.shape[-1]
            q, k, v = qkv.index_select(0, rows).view(s, t, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
            a = attention(q, k, v, bias).transpose(1, 2).reshape(s * t, c)  # (S * t, C)
            out.index_copy_(0, dest, a.index_select(0, at))
        return out


class _BertLayer:
    """One BERT encoder layer (post-norm) as a function of the real tokens' hidden states, over the layer's own
    modules."""

    def __init__(self, layer: nn.Module, heads: int, act: Callable[[torch.Tensor], torch.Tensor]):
        att = layer.attention
        self.qkv = _fused_qkv(att.self.query, att.self.key, att.self.value)
        self.out, self.ln1 = _linear(att.output.dense), att.output.LayerNorm
        self.up, self.down = _linear(layer.intermediate.dense), _linear(layer.output.dense)
        self.ln2 = layer.output.LayerNorm
        self.heads, self.act = heads, act

    def __call__(self, x: torch.Tensor, tok: _Tokens) -> torch.Tensor:  # (N, C) real tokens -> (N, C)
        c = x.shape[-1]
        a = tok.attend(self.qkv(x), self.heads)  # (N, C)
        x = F.layer_norm(self.out(a) + x, (c,), self.ln1.weight, self.ln1.bias, self.ln1.eps)
        return F.layer_norm(self.down(self.act(self.up(x))) + x, (c,), self.ln2.weight, self.ln2.bias, self.ln2.eps)


def _bert_plan(hf: nn.Module | None) -> tuple[nn.Module, list[_BertLayer]] | None:
    """The embeddings module and lean layers of a Hugging Face BERT-family encoder, or None if ``hf`` is not one
    this forward reproduces (absolute positions, no decoder or cross-attention, a known activation)."""
    cfg = getattr(hf, "config", None)
    layers = getattr(getattr(hf, "encoder", None), "layer", None)
    if cfg is None or layers is None or getattr(hf, "embeddings", None) is None:
        return None
    if (getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False)
            or getattr(cfg, "position_embedding_type", "absolute") != "absolute"
            or not isinstance(getattr(cfg, "hidden_act", None), str) or cfg.hidden_act not in _ACTIVATIONS):
        return None
    try:
        plan = [_BertLayer(layer, cfg.num_attention_heads, _ACTIVATIONS[cfg.hidden_act]) for layer in layers]
    except AttributeError:  # not BERT's module layout (query/key/value, output.dense, LayerNorm, ...)
        return None
    return hf.embeddings, plan


class LeanEncoder(BatchEncoder):
    """A SentenceTransformer for serving: ``encode`` pays for the tokenizer and the network only.

    For a BERT-family transformer (BERT, MiniLM, and their ternary copies) the forward pass runs
    the model's own modules without Hugging Face's per-layer Python: query, key and value fused into
    one linear layer (for frozen ternary layers: their packed codes stacked, exact), one attention call
    (:func:`attention`; no mask when nothing is padded) and functional layer norms, and the row-wise
    layers skip the padding of a padded batch (they run on its real tokens only; padded positions of
    :meth:`token_embeddings` hold zeros). Other architectures run the transformer module as it is.
    The modules after the transformer (pooling, normalization, dense) run as they are.

    The model is put in eval mode once, here; the encoder holds the model, so later changes to
    its weights are seen, but fused query/key/value weights are copies taken here: build a new
    encoder after changing the model's weights or moving it to another device.

    Args:
        model: a SentenceTransformer (FP32, bf16 or with ternary layers), on the CPU or a GPU.
        lean: False runs every module as it is (only ``encode``'s bookkeeping is skipped).
        skip_padding: False makes the lean forward compute every padded token too, as the model's own
            forward does (one attention call a batch): slower, for comparison.

    Example:
        >>> import torch
        >>> from ternlib import LeanEncoder, load_text_encoder
        >>> model = load_text_encoder()
        >>> texts = ["How small can an embedding model be?", "Two bits a weight."]
        >>> torch.allclose(LeanEncoder(model).encode(texts), model.encode(texts, convert_to_tensor=True), atol=1e-5)
        True
    """

    def __init__(self, model: nn.Module, lean: bool = True, skip_padding: bool = True):
        if not (isinstance(model, nn.Sequential) and hasattr(model, "encode") and len(model)):
            raise TypeError(f"LeanEncoder wraps a SentenceTransformer, got {type(model).__name__}")
        self.model = model.eval()
        self.plan = _bert_plan(_transformer(model)) if lean else None
        self.device = next(iter(model.parameters()), torch.empty(0)).device
        self.skip_padding = skip_padding

    @property
    def architecture(self) -> str:
        """``"lean BERT"`` when the lean forward runs, else ``"modules"``."""
        return "lean BERT" if self.plan is not None else "modules"

    def token_embeddings(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, T, C)
        """The transformer's last hidden states for tokenized ``feats`` (the lean forward; see the class)."""
        if self.plan is None:
            raise RuntimeError(f"no lean forward for this model (architecture {self.architecture!r}): "
                               "call encode, which runs its modules")
        embeddings, layers = self.plan
        h = embeddings(input_ids=feats["input_ids"], token_type_ids=feats.get("token_type_ids"))  # (B, T, C)
        tok = _Tokens(feats["attention_mask"], h.dtype, self.skip_padding)
        x = tok.rows(h)  # (N, C): the real tokens, padding left out
        for layer in layers:
            x = layer(x, tok)
        return tok.padded(x)

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:  # (B, d)
        feats = {k: v.to(self.device) for k, v in features(self.model, texts).items()}
        if self.plan is None:
            return self.model(feats)["sentence_embedding"]
        feats["token_embeddings"] = self.token_embeddings(feats)
        for module in list(self.model)[1:]:  # pooling, normalize, dense: as they are
            feats = module(feats)
        return feats["sentence_embedding"]


# ------------------------------------------------------------------------------------------- ONNX Runtime

ORT_INSTALL = "pip install onnxruntime onnx   (or: pip install 'ternlib[bench]')"


def missing_onnxruntime() -> list[str]:
    """The packages ONNX export and serving need (``onnxruntime``, ``onnx``) that do not import here; [] if none."""
    return [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]


class _SentenceEmbedding(nn.Module):
    """A SentenceTransformer as a function of its token tensors, for ``torch.onnx.export``."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, inputs)))["sentence_embedding"]


def export_onnx(model: nn.Module, path: str | os.PathLike, opset: int = 17) -> list[str]:
    """Export a SentenceTransformer (tokens -> pooled, normalized embedding) to ONNX; returns the input names.

    Batch and sequence length are dynamic axes. The TorchScript-based exporter (``dynamo=False``) is
    used: it needs no ``onnxscript``, and a BERT encoder traces cleanly with it.
    """
    model = model.eval()
    feats = features(model, ["a sentence to trace the encoder with", "and a shorter one"], quiet=True)
    names = list(feats)
    kwargs: dict[str, Any] = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_SentenceEmbedding(model, names), tuple(feats[n] for n in names), str(path),
                          input_names=names, output_names=["sentence_embedding"], opset_version=opset,
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                        "sentence_embedding": {0: "batch"}}, **kwargs)
    return names


class OrtEncoder(BatchEncoder):
    """An exported SentenceTransformer run by ONNX Runtime, tokenized by the model's own tokenizer.

    The session uses as many intra-op threads as torch and does not spin-wait between calls (a
    spinning thread would take CPU from the variant timed next in an interleaved benchmark).
    """

    def __init__(self, model: nn.Module, onnx_path: str | os.PathLike, names: list[str], threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.model, self.names = model, names

    def embed(self, texts: list[str]) -> np.ndarray:  # (B, d)
        feats = features(self.model, texts)
        return self.session.run(None, {n: feats[n].numpy() for n in self.names})[0]

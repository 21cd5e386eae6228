"""save / load: a ternary model as one safetensors file + a small JSON config (never pickle).

A checkpoint is a directory:

- ``ternlib.json``: format version, the TernaryConfig, which modules are ternary or int8, the
  kind of model and how to rebuild it, and the SHA-256 of the weights file;
- ``ternlib.safetensors``: the whole state dict with ternary layers packed (codes, scales,
  biases) and everything else as it is in the model;
- for a ``SentenceTransformer``: its own skeleton files (modules.json, tokenizer, pooling
  config, ``config.json``) without weights; for a transformers model: ``config.json``.
- optionally ``quality.json``: the measured quality of the model at each activation precision
  (:func:`record_quality`), from which :func:`load` picks the fastest validated one by default.

``load`` rebuilds the architecture (from the transformers / sentence-transformers config, or
from a skeleton you pass), swaps in frozen ternary layers, loads the tensors with
``strict=True`` and returns a model in eval mode whose outputs are bit-identical to the saved one.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .attention import LinearMultiheadAttention
from .config import ACTIVATIONS, TernaryConfig
from .embedding import Int8Embedding
from .layers import TernaryLinear
from .models import is_sentence_transformer
from .quantize import freeze_, set_submodule, ternary_modules

FORMAT = "ternlib-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "ternlib.json"
WEIGHTS_FILE = "ternlib.safetensors"
QUALITY_FILE = "quality.json"
# int8 activations become load()'s default when their recorded suite average is at most this far (0.5 points)
# below float activations' (same preset, seed and tasks)
QUALITY_TOLERANCE = 0.005


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete, corrupt or not a ternlib checkpoint."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_transformers_model(model: nn.Module) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return False
    return isinstance(model, PreTrainedModel)


def _remove_weight_files(root: Path) -> None:
    for pattern in ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.msgpack", "*.h5"):
        for p in root.rglob(pattern):
            if p.name != WEIGHTS_FILE:
                p.unlink()


@contextlib.contextmanager
def _config_only(model: nn.Module):
    """While active, the transformers models inside ``model`` save their config, not weights."""
    patched = []
    for m in model.modules():
        inner = getattr(m, "auto_model", None)
        if inner is not None and hasattr(inner, "config") and hasattr(inner, "save_pretrained"):
            inner.save_pretrained = lambda out, *a, _c=inner.config, **kw: _c.save_pretrained(out)
            patched.append(inner)
    try:
        yield
    finally:
        for inner in patched:
            del inner.save_pretrained


def save(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save a ternarized model to the directory ``path`` (created; existing files replaced).

    Ternary layers still in training state are written frozen (packed codes and scales) from a
    frozen copy: the model you pass is left as it is, so training can go on after a save.
    Returns the directory.

    Example:
        >>> import torch, tempfile
        >>> from ternlib import freeze_, quantize_, save, load
        >>> m = quantize_(torch.nn.Sequential(torch.nn.Linear(8, 4)))
        >>> d = save(m, tempfile.mkdtemp())
        >>> m[0].frozen                      # the model passed in still trains
        False
        >>> m2 = load(d, model=torch.nn.Sequential(torch.nn.Linear(8, 4)))
        >>> x = torch.randn(2, 8); torch.equal(freeze_(m)(x), m2(x))
        True
    """
    from safetensors.torch import save_file

    if not isinstance(model, nn.Module):
        raise TypeError(f"save expects a torch.nn.Module, got {type(model).__name__}")
    layers = list(ternary_modules(model))
    if not layers:
        raise ValueError("save found no TernaryLinear in the model: call ternlib.quantize_ first")
    configs = {layer.config for _, layer in layers}
    if len(configs) > 1:
        raise ValueError(f"save supports one TernaryConfig per model, found {len(configs)}")
    if any(not layer.frozen for _, layer in layers):  # pack a copy: the caller keeps its latent weights
        model = freeze_(copy.deepcopy(model))
        layers = list(ternary_modules(model))
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ternary_config": next(iter(configs)).to_dict(),
        "ternary_modules": {n: [m.in_features, m.out_features, m.bias is not None] for n, m in layers},
        "int8_embeddings": {n: [m.num_embeddings, m.embedding_dim, m.padding_idx]
                            for n, m in model.named_modules() if isinstance(m, Int8Embedding)},
    }
    mha = [n for n, m in model.named_modules() if isinstance(m, LinearMultiheadAttention)]
    if mha:  # rebuilt from nn.MultiheadAttention by quantize_: load does the same to the skeleton
        meta["linear_attention"] = mha
    if is_sentence_transformer(model):
        meta["kind"] = "sentence-transformers"
        with _config_only(model):  # skeleton: modules.json, tokenizer, configs, no weights
            model.save(str(path), safe_serialization=True)
        _remove_weight_files(path)  # our packed file holds every tensor
    elif _is_transformers_model(model):
        meta["kind"] = "transformers"
        meta["class"] = type(model).__name__
        if hasattr(model, "pooler") and model.pooler is None:  # e.g. ViTModel(config, add_pooling_layer=False)
            meta["init_kwargs"] = {"add_pooling_layer": False}
        model.config.save_pretrained(str(path))
    else:
        meta["kind"] = "torch"
        meta["class"] = f"{type(model).__module__}.{type(model).__qualname__}"

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _drop_shared(state)
    weights = path / WEIGHTS_FILE
    save_file(state, str(weights), metadata={"format": FORMAT})
    meta["weights_sha256"] = _sha256(weights)
    meta["weights_bytes"] = weights.stat().st_size
    from .version import __version__

    meta["ternlib_version"] = __version__
    (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (path / QUALITY_FILE).unlink(missing_ok=True)  # measured on other weights
    return path


def _drop_shared(state: dict[str, torch.Tensor]) -> None:
    """safetensors refuses tensors that share memory: keep the first name of each storage."""
    seen: dict[tuple[int, int, tuple], str] = {}
    for k in list(state):
        t = state[k]
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if t.numel() and key in seen:
            state[k] = t.clone()
        else:
            seen[key] = k


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``ternlib.json`` of a checkpoint, checked for format and version."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; a ternlib checkpoint is a directory holding {CONFIG_FILE}")
    cfg_path = path / CONFIG_FILE
    if not cfg_path.exists():
        raise CheckpointError(f"{path} is not a ternlib checkpoint: {CONFIG_FILE} is missing")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({e}); the checkpoint is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path} is not a ternlib checkpoint config (format field missing or foreign)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {meta.get('format_version')} is not supported "
            f"(this ternlib reads version {FORMAT_VERSION})"
        )
    for key in ("ternary_config", "ternary_modules", "kind", "weights_sha256"):
        if key not in meta:
            raise CheckpointError(f"{cfg_path} lacks the field {key!r}; the checkpoint is incomplete")
    return meta


def _read_weights(path: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = path / WEIGHTS_FILE
    if not weights.exists():
        raise CheckpointError(f"{path} is incomplete: {WEIGHTS_FILE} is missing")
    size = weights.stat().st_size
    if "weights_bytes" in meta and size != meta["weights_bytes"]:
        raise CheckpointError(
            f"{weights} has {size} bytes but the checkpoint recorded {meta['weights_bytes']}: truncated or replaced"
        )
    if _sha256(weights) != meta["weights_sha256"]:
        raise CheckpointError(f"{weights} does not match its recorded SHA-256: the file is corrupt")
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {e}") from None


@contextlib.contextmanager
def _skeleton_from_config():
    """While active, sentence-transformers builds its transformer from config.json (no weights)."""
    from sentence_transformers.base.modules import transformer as st_transformer

    cls = st_transformer.Transformer
    if not hasattr(cls, "_load_model"):
        raise RuntimeError("this sentence-transformers version is not supported by ternlib.load")
    original = cls._load_model

    def from_config(self, model_name_or_path, transformer_task, config, *args, **kwargs):
        from transformers import AutoModel

        return AutoModel.from_config(config)

    cls._load_model = from_config
    try:
        yield
    finally:
        cls._load_model = original


def _build_skeleton(path: Path, meta: dict[str, Any], model: nn.Module | None) -> nn.Module:
    if model is not None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module skeleton, got {type(model).__name__}")
        return model
    kind = meta["kind"]
    if kind == "sentence-transformers":
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ImportError("this checkpoint is a SentenceTransformer: pip install sentence-transformers") from None
        with _skeleton_from_config():
            return SentenceTransformer(str(path), device="cpu")
    if kind == "transformers":
        try:
            import transformers
        except ImportError:
            raise ImportError("this checkpoint is a transformers model: pip install transformers") from None
        cls = getattr(transformers, meta.get("class", ""), None)
        if cls is None:
            raise CheckpointError(f"unknown transformers class {meta.get('class')!r} in {path / CONFIG_FILE}")
        config = transformers.AutoConfig.from_pretrained(str(path))
        kwargs = meta.get("init_kwargs", {})
        if not isinstance(kwargs, dict) or set(kwargs) - {"add_pooling_layer"}:
            raise CheckpointError(f"unsupported init_kwargs {kwargs!r} in {path / CONFIG_FILE}")
        return cls(config, **kwargs)
    if kind == "torch":
        raise ValueError(
            f"{path} holds a plain torch model ({meta.get('class')}): pass an instance of it, "
            "load(path, model=MyModel(...)), so its architecture can be rebuilt"
        )
    raise CheckpointError(f"unknown model kind {kind!r} in {path / CONFIG_FILE}")


def read_quality(path: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint's ``quality.json`` (see :func:`record_quality`), or ``None`` when it has none or
    the file was measured on other weights (its ``weights_sha256`` differs from the checkpoint's)."""
    path = Path(path)
    return _read_quality(path, read_config(path))


def _read_quality(path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    qpath = path / QUALITY_FILE
    if not qpath.exists():
        return None
    try:
        quality = json.loads(qpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{qpath} is not valid JSON ({e}); delete it or record the quality again") from None
    by_act = quality.get("activations") if isinstance(quality, dict) else None
    if not isinstance(by_act, dict) or any(
            a not in ACTIVATIONS or not isinstance(e, dict) or not isinstance(e.get("average"), (int, float))
            or not isinstance(e.get("tasks"), dict) for a, e in by_act.items()):
        raise CheckpointError(f"{qpath} is not a ternlib quality record (activations -> average and tasks)")
    if quality.get("weights_sha256") != meta["weights_sha256"]:
        return None
    return quality


def record_quality(path: str | os.PathLike, results: dict[str, Any], activations: str | None = None) -> dict[str, Any]:
    """Record in a checkpoint the quality measured at one activation precision (``quality.json``).

    ``results`` is what :func:`ternlib.evaluation.evaluate` returned (or ``ternlib eval --out`` wrote)
    for this checkpoint loaded with ``activations`` (``"float"`` or ``"int8"``; ``None``: the
    ``"activations"`` field of the results, which ``ternlib eval`` writes). ``ternlib eval --record``
    does this after its evaluation. Returns the updated record.

    Example:
        >>> import torch, tempfile
        >>> from ternlib import quantize_, save
        >>> d = save(quantize_(torch.nn.Sequential(torch.nn.Linear(8, 4))), tempfile.mkdtemp())
        >>> default_activations(d)                 # nothing measured yet: as saved
        'float'
        >>> _ = record_quality(d, {"tasks": {"sts": {"main": 0.800}}, "preset": "book"}, "float")
        >>> _ = record_quality(d, {"tasks": {"sts": {"main": 0.797}}, "preset": "book"}, "int8")
        >>> default_activations(d)                 # int8 lost 0.3 points: load(d) computes with int8
        'int8'
    """
    path = Path(path)
    meta = read_config(path)
    activations = activations or results.get("activations")
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {ACTIVATIONS} (the precision the results were measured "
                         f"at), got {activations!r}")
    tasks = results.get("tasks") if isinstance(results, dict) else None
    if not isinstance(tasks, dict) or not tasks or any(not isinstance(t, dict) or "main" not in t
                                                       for t in tasks.values()):
        raise ValueError("results must hold per-task scores under 'tasks' (each with a 'main' score), as "
                         "ternlib.evaluation.evaluate returns them")
    main = {name: float(t["main"]) for name, t in sorted(tasks.items())}
    quality = _read_quality(path, meta) or {"weights_sha256": meta["weights_sha256"], "activations": {}}
    quality["activations"][activations] = {
        "preset": results.get("preset"), "seed": results.get("seed"), "tasks": main,
        "average": sum(main.values()) / len(main)}
    (path / QUALITY_FILE).write_text(json.dumps(quality, indent=2) + "\n")
    return quality


def default_activations(path: str | os.PathLike) -> str:
    """The activation precision :func:`load` uses when none is asked for: ``"int8"`` (the fast path on
    CPU and GPU) where the checkpoint's quality record shows int8 activations within
    ``QUALITY_TOLERANCE`` (0.5 points) of float activations' suite average, measured alike (same preset,
    seed and tasks); otherwise the precision the checkpoint was saved with.
    """
    path = Path(path)
    return _default_activations(path, read_config(path))


def _default_activations(path: Path, meta: dict[str, Any]) -> str:
    saved = meta["ternary_config"].get("activations", TernaryConfig.activations)
    quality = _read_quality(path, meta)
    if saved == "int8" or quality is None:
        return saved
    f, i = quality["activations"].get("float"), quality["activations"].get("int8")
    alike = f and i and all(f.get(k) == i.get(k) for k in ("preset", "seed")) and set(f["tasks"]) == set(i["tasks"])
    return "int8" if alike and f["average"] - i["average"] <= QUALITY_TOLERANCE + 1e-12 else saved  # rounding


def load(path: str | os.PathLike, model: nn.Module | None = None, device: str | torch.device = "cpu",
         activations: str | None = None) -> nn.Module:
    """Load a checkpoint written by :func:`save`, frozen and in eval mode, ready for fast inference.

    Every ternary layer computes through the kernel dispatch (:mod:`ternlib.kernels`), which
    picks the fastest kernel for each call (packed C++ kernel for a few tokens, an int8 GEMM for
    large batches on CPU with int8 activations, Triton on CUDA). With float activations, cast the
    model for half-precision speed: ``load(path, activations="float").to(torch.bfloat16)`` runs its
    large batches through the bf16 GEMM (the codes are exact in bf16; the scales stay float32).

    Args:
        path: the checkpoint directory.
        model: for a plain torch model, a freshly built instance of its architecture (full
            precision, not quantized); not needed for transformers or sentence-transformers models.
        device: where the loaded model lives.
        activations: the activation precision of the ternary layers: ``"int8"`` (per-token int8,
            the fast path) or ``"float"``; ``None``: the fastest precision the checkpoint was
            validated for (:func:`default_activations`: int8 where its recorded quality is within
            0.5 points of float activations, else the saved precision).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: missing files, a foreign or corrupt config, truncated or corrupt
            weights, or tensors that do not fit the architecture.
    """
    path = Path(path)
    meta = read_config(path)
    state = _read_weights(path, meta)
    try:
        config = TernaryConfig.from_dict(meta["ternary_config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"invalid ternary_config in {path / CONFIG_FILE}: {e}") from None
    if activations is None:
        activations = _default_activations(path, meta)
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be 'float' or 'int8', got {activations!r}")
    config = dataclasses.replace(config, activations=activations)
    skeleton = _build_skeleton(path, meta, model)

    for name in meta.get("linear_attention", []):
        m = dict(skeleton.named_modules()).get(name)
        if isinstance(m, nn.MultiheadAttention):
            set_submodule(skeleton, name, LinearMultiheadAttention.from_mha(m))
        elif not isinstance(m, LinearMultiheadAttention):
            raise CheckpointError(f"the model has no multi-head attention named {name!r} to load into")
    modules = dict(skeleton.named_modules())
    for name, (k, n, bias) in meta["ternary_modules"].items():
        m = modules.get(name)
        if not isinstance(m, (nn.Linear, TernaryLinear)) or (m.in_features, m.out_features) != (k, n):
            raise CheckpointError(f"the model has no {k}->{n} linear layer named {name!r} to load into")
        set_submodule(skeleton, name, TernaryLinear.empty_frozen(k, n, bias, config))
    for name, (v, d, pad) in meta.get("int8_embeddings", {}).items():
        m = modules.get(name)
        if not isinstance(m, (nn.Embedding, Int8Embedding)) or (m.num_embeddings, m.embedding_dim) != (v, d):
            raise CheckpointError(f"the model has no {v}x{d} embedding named {name!r} to load into")
        set_submodule(skeleton, name, Int8Embedding(v, d, pad))

    expected = skeleton.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint tensors do not fit the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for k, t in state.items():
        if tuple(expected[k].shape) != tuple(t.shape):
            raise CheckpointError(f"tensor {k!r} has shape {tuple(t.shape)}, "
                                  f"the model expects {tuple(expected[k].shape)}")
    skeleton.load_state_dict(state, strict=True)
    for _, layer in ternary_modules(skeleton):  # reject impossible codes now, not mid-inference
        try:
            layer.codes()
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
    return skeleton.to(device).eval()


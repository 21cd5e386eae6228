"""ternlib: ternary-weight (-1, 0, +1 times a scale) embedding models by self-distillation.

Public API::

    from ternlib import TernaryConfig, quantize_, freeze_, save, load, storage_report
    model = quantize_(model, TernaryConfig(beta=2.0))   # every nn.Linear -> TernaryLinear
    ...train (self-distillation)...
    save(model, "ckpt/")                                  # packed 2-bit codes + scales, safetensors
    model = load("ckpt/")                                 # frozen, ready for inference
    emb = LeanEncoder(model).encode(texts)                # serving: tokenizer + network, no per-call overhead
    record_quality("ckpt/", results, "int8")              # measured scores: load picks int8 where they hold

Modules by concept: config / ternarize / packing / layers / quantize / attention / embedding (the
core), activations and kernels/ (inference: registry, reference, cpu/, triton/), serving (encode
without per-call overhead, by PyTorch or ONNX Runtime), checkpoint and storage, models (loading
encoders), distill/ (self-distillation), data/ (text data and the training corpus), evaluation/,
vision/ (image encoders, images, probes), ann/ (FAISS search), bench, theory, and cli/ (the
``ternlib`` command). ``import ternlib`` stays light: transformers, torchvision, FAISS and
scikit-learn load only when a feature that needs them runs.
"""
from .checkpoint import CheckpointError, default_activations, load, read_config, record_quality, save
from .config import TernaryConfig
from .embedding import Int8Embedding, Int8EmbeddingConfig
from .export import export_ternary_onnx
from .intquant import IntConfig, int_quantize_
from .kernels import PackedTernary, available_kernels, register_kernel, ternary_linear
from .layers import TernaryLinear
from .models import DEFAULT_TEXT_MODEL, load_text_encoder
from .packing import pack, pack_2bit, pack_5trit, unpack, unpack_2bit, unpack_5trit
from .quantize import DEFAULT_SKIP, default_filter, freeze_, quantize_, ternary_modules
from .serving import LeanEncoder, OrtEncoder
from .storage import StorageReport, storage_report
from .ternarize import TernaryWeight, dequantize, fake_quantize, reconstruction_error, sparsity, ternarize
from .version import __version__  # noqa: F401  (ternlib.__version__)

__all__ = [
    "CheckpointError", "DEFAULT_IMAGE_MODEL", "DEFAULT_SKIP", "DEFAULT_TEXT_MODEL", "Int8Embedding",
    "Int8EmbeddingConfig", "IntConfig", "LeanEncoder", "OrtEncoder", "PackedTernary", "StorageReport",
    "TernaryConfig", "TernaryLinear", "TernaryWeight", "available_kernels", "default_activations",
    "default_filter", "dequantize", "embed_images", "export_ternary_onnx", "fake_quantize", "freeze_",
    "int_quantize_", "load",
    "load_image_encoder", "load_text_encoder", "pack", "pack_2bit", "pack_5trit", "quantize_", "read_config",
    "reconstruction_error", "record_quality", "register_kernel", "save", "sparsity", "storage_report",
    "ternarize", "ternary_linear", "ternary_modules", "unpack", "unpack_2bit", "unpack_5trit",
]

_LAZY = {"DEFAULT_IMAGE_MODEL": "vision", "embed_images": "vision", "load_image_encoder": "vision"}


def __getattr__(name: str):
    """The image-encoder API loads ``ternlib.vision`` on first use, so ``import ternlib`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ternlib' has no attribute {name!r}")

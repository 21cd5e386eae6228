"""Ternary image encoders: ViT teachers, self-distillation on unlabelled images, probes.

The offline path of the book (no pretrained ViT is installable here): train a small ViT on
Fashion-MNIST (:func:`train_teacher`), ternarize a copy and self-distill it from the frozen
teacher on the training images without their labels, then freeze both encoders and compare
them by linear and k-NN probes on their [CLS] embeddings (:func:`run_experiment`, or
``python -m ternlib vision``). The online path runs the paper's setup through the same code:
``load_image_encoder("google/vit-base-patch16-224")`` and CIFAR-10/100 from torchvision.

Example:
    >>> import torch
    >>> from ternlib import quantize_, TernaryConfig
    >>> from ternlib.vision import tiny_vit_config, embed_images
    >>> from transformers import ViTModel
    >>> enc = quantize_(ViTModel(tiny_vit_config(hidden=32, layers=1, heads=2, mlp=64), add_pooling_layer=False))
    >>> embed_images(enc, torch.zeros(3, 1, 28, 28, dtype=torch.uint8)).shape   # (N, hidden) [CLS] embeddings
    (3, 32)
"""
from .encoders import (
    DEFAULT_IMAGE_MODEL,
    classifier_accuracy,
    embed_images,
    hidden_mse,
    load_image_encoder,
    require_transformers,
    tiny_vit_config,
    train_teacher,
)
from .experiment import IMAGE_RECIPES, ImageExperimentConfig, latency, results_table, run_experiment
from .images import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    ImageSet,
    ImageTransform,
    PixelCollate,
    load_fashion_mnist,
)
from .probe import knn_probe, linear_probe

__all__ = ["DEFAULT_IMAGE_MODEL", "FASHION_MNIST_CLASSES", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "IMAGE_RECIPES",
           "ImageExperimentConfig", "ImageSet", "ImageTransform", "PixelCollate", "classifier_accuracy", "embed_images",
           "hidden_mse", "knn_probe", "latency", "linear_probe", "load_fashion_mnist", "load_image_encoder",
           "require_transformers", "results_table", "run_experiment", "tiny_vit_config", "train_teacher"]

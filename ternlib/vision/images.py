"""Image data for the vision chapter: Fashion-MNIST offline, CIFAR-10/100 online, and batching.

Images are kept as uint8 tensors ``(N, C, H, W)``; :class:`ImageTransform` turns a batch of them
into a model's ``pixel_values`` (resize, channel repeat, optional augmentation, normalization).

- Fashion-MNIST (60k train / 10k test, 28x28 grey, MIT) is the data layer's ``fashion-mnist``
  asset: the Debian package ``dataset-fashion-mnist``, the user cache, or torchvision's download.
- CIFAR-10/100 (the paper's linear-probe sets) come from torchvision (online).

Example:
    >>> import torch
    >>> from ternlib.vision.images import ImageTransform
    >>> t = ImageTransform(size=32, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    >>> t(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape   # grey 28x28 -> RGB 32x32
    torch.Size([2, 3, 32, 32])
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..data.assets import ASSETS, DataNotFoundError, fashion_mnist_download, locate

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# mean and std of the Fashion-MNIST training pixels in [0, 1]
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)


@dataclass
class ImageSet:
    """``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)`` into ``classes``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"ImageSet.images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{len(self.images)} images but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, n: int | None, seed: int = 0) -> "ImageSet":
        """A seeded random sample of ``n`` images (all of them when ``n`` is None or too large)."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return ImageSet(self.images[idx], self.labels[idx], self.classes, self.name)


def _read_idx(path: Path, magic: int, dims: int) -> torch.Tensor:
    """One gzipped IDX file (the MNIST format): big-endian magic, dims, then uint8 data."""
    try:
        raw = gzip.open(path).read()
    except (OSError, EOFError) as e:
        raise DataNotFoundError(f"{path} is not a readable gzip file ({e}); reinstall dataset-fashion-mnist") from None
    if len(raw) < 4 + 4 * dims or int.from_bytes(raw[:4], "big") != magic:
        raise DataNotFoundError(f"{path} is not an IDX file with magic {magic:#x}: corrupt or foreign")
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    n = 1
    for s in shape:
        n *= s
    body = raw[4 + 4 * dims:]
    if len(body) != n:
        raise DataNotFoundError(f"{path} holds {len(body)} bytes of data, its header says {n}: truncated")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def fashion_mnist_dir(root: str | os.PathLike | None = None, download: bool | None = None,
                      split: str | None = None) -> Path:
    """The folder of the four Fashion-MNIST files: ``root`` (or its torchvision layout
    ``root/FashionMNIST/raw``; with ``download=True`` torchvision downloads into it), else the
    ``fashion-mnist`` asset (:func:`ternlib.data.assets.locate`: ``$TERNLIB_FASHION_MNIST``, the Debian
    package, the user cache, or torchvision's download). With ``split``, a ``root`` holding only
    that split's two files will do."""
    if root is not None:
        root = Path(root).expanduser()
        need = FASHION_MNIST_FILES[split] if split in FASHION_MNIST_FILES else ASSETS["fashion-mnist"].files
        for d in (root, root / "FashionMNIST" / "raw"):
            if all((d / f).is_file() for f in need):
                return d
        if download:
            return fashion_mnist_download(root)
    return locate("fashion-mnist", root, download)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None,
                       download: bool | None = None) -> ImageSet:
    """Fashion-MNIST ``split`` ("train": 60,000 images, "test": 10,000) as an :class:`ImageSet`.

    Reads the gzipped IDX files from :func:`fashion_mnist_dir` (``root``, else wherever the data
    layer finds them, downloading them with torchvision when they are nowhere and downloads are on).
    """
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    where = fashion_mnist_dir(root, download, split)
    img_name, lab_name = FASHION_MNIST_FILES[split]
    images = _read_idx(where / img_name, 0x803, 3)  # (N, 28, 28)
    labels = _read_idx(where / lab_name, 0x801, 1).long()  # (N,)
    if len(images) != len(labels):
        raise DataNotFoundError(f"{where}: {len(images)} images but {len(labels)} labels")
    return ImageSet(images.unsqueeze(1), labels, FASHION_MNIST_CLASSES, f"fashion-mnist/{split}")


def load_torchvision_images(name: str, split: str = "train", root: str | os.PathLike | None = None,
                            download: bool = True) -> ImageSet:
    """CIFAR-10 / CIFAR-100 / Fashion-MNIST through torchvision (downloads online) as an ImageSet;
    ``root`` defaults to ``<user cache>/data`` (:func:`ternlib.data.assets.cache_dir`)."""
    from ..data.assets import cache_dir

    root = cache_dir() / "data" if root is None else root
    import torchvision.datasets as tvd

    sets = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "fashion-mnist": tvd.FashionMNIST}
    if name not in sets:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(sets)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        ds = sets[name](str(Path(root).expanduser()), train=split == "train", download=download)
    except RuntimeError as e:
        raise DataNotFoundError(f"{name} is not in {root} and could not be downloaded ({e})") from None
    data = torch.as_tensor(ds.data)
    images = data.permute(0, 3, 1, 2) if data.dim() == 4 else data.unsqueeze(1)  # (N, C, H, W)
    return ImageSet(images.contiguous(), torch.as_tensor(ds.targets).long(), tuple(ds.classes), f"{name}/{split}")


@dataclass(frozen=True)
class ImageTransform:
    """uint8 ``(B, C, H, W)`` -> normalized float ``pixel_values`` ``(B, channels, size, size)``.

    ``augment`` adds torchvision's random crop (zero padding ``pad``) and horizontal flip, drawn
    from the global torch RNG (so a resumed distillation run sees the same images).
    """

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 2

    def __post_init__(self) -> None:
        if len(self.mean) not in (1, self.channels) or len(self.std) not in (1, self.channels):
            raise ValueError(f"mean/std need 1 or {self.channels} values, got {self.mean} / {self.std}")

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> "ImageTransform":
        """The transform a transformers ViT expects: its config's image size and channels, and
        the ``image_mean`` / ``image_std`` saved in its config (default 0.5, as google/vit-*)."""
        cfg = getattr(model, "config", None)
        if cfg is None or not hasattr(cfg, "image_size"):
            raise TypeError(f"{type(model).__name__} has no config.image_size: pass an ImageTransform explicitly")
        c = int(getattr(cfg, "num_channels", 3))
        size = cfg.image_size if isinstance(cfg.image_size, int) else cfg.image_size[0]
        return cls(int(size), c, tuple(getattr(cfg, "image_mean", None) or (0.5,) * c),
                   tuple(getattr(cfg, "image_std", None) or (0.5,) * c))

    def __call__(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 images (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
        x = images.float().div_(255)  # (B, C, H, W) in [0, 1]
        if x.shape[1] != self.channels:
            if x.shape[1] == 1:
                x = x.expand(-1, self.channels, -1, -1)
            elif self.channels == 1:
                x = x.mean(1, keepdim=True)
            else:
                raise ValueError(f"cannot turn {x.shape[1]}-channel images into {self.channels} channels")
        if augment:
            x = _random_crop_flip(x, self.pad)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((x - mean) / std).contiguous()


def _random_crop_flip(x: torch.Tensor, pad: int) -> torch.Tensor:
    """torchvision's RandomCrop (zero padding ``pad``) and RandomHorizontalFlip, drawn per image
    from the torch RNG."""
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise ImportError("image augmentation needs torchvision: pip install torchvision") from None
    aug = v2.Compose([v2.RandomCrop(x.shape[-2:], padding=pad), v2.RandomHorizontalFlip()])
    return torch.stack([aug(img) for img in x])  # (B, C, H, W)


class PixelCollate:
    """``collate(list of indices) -> {"pixel_values": (B, C, S, S)}`` over an ImageSet, for
    :func:`ternlib.distill.distill` on unlabelled images."""

    def __init__(self, images: ImageSet | torch.Tensor, transform: ImageTransform, augment: bool = True):
        self.images = images.images if isinstance(images, ImageSet) else images
        self.transform, self.augment = transform, augment

    def __call__(self, idx: Sequence[int]) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.transform(self.images[torch.as_tensor(list(idx))], augment=self.augment)}

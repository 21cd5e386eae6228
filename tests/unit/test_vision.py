"""Image side: Fashion-MNIST reading, transforms, probes, ViT quantize/distill/save/load, the online path."""
import gzip
import json

import numpy as np
import pytest
import torch

from ternlib import TernaryConfig, freeze_, load, quantize_, save, ternary_modules
from ternlib.data.assets import where
from ternlib.data.text import DataNotFoundError
from ternlib.distill import DistillConfig, distill, make_student
from ternlib.vision import embed_images, hidden_mse, load_image_encoder, tiny_vit_config
from ternlib.vision.images import ImageSet, ImageTransform, PixelCollate, load_fashion_mnist
from ternlib.vision.probe import knn_probe, linear_probe

transformers = pytest.importorskip("transformers")
needs_fashion = pytest.mark.skipif(where()["fashion-mnist"] == "missing", reason="ternlib data fetch fashion-mnist")


def tiny_vit(**kw):
    cfg = tiny_vit_config(**{"hidden": 32, "layers": 2, "heads": 2, "mlp": 64, **kw})
    return transformers.ViTModel(cfg, add_pooling_layer=False).eval()


def fake_images(n=8, c=1, s=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, s, s), dtype=torch.uint8, generator=g)


# ---------------------------------------------------------------------------- data
@needs_fashion
def test_fashion_mnist_test_split():
    test = load_fashion_mnist("test")
    assert test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert sorted(test.labels.unique().tolist()) == list(range(10))
    assert torch.bincount(test.labels).tolist() == [1000] * 10  # balanced classes
    sub = test.subset(100, seed=1)
    assert len(sub) == 100 and sub.classes[9] == "Ankle boot"


def _write_idx(path, magic, shape, body):
    header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in shape)
    with gzip.open(path, "wb") as f:
        f.write(header + body)


def test_fashion_mnist_bad_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("valid", root=tmp_path)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x803, (3, 28, 28), bytes(3 * 28 * 28 - 5))  # truncated
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x801, (3,), bytes(3))
    with pytest.raises(DataNotFoundError, match="truncated"):
        load_fashion_mnist("test", root=tmp_path)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x801, (3, 28, 28), bytes(3 * 28 * 28))  # wrong magic
    with pytest.raises(DataNotFoundError, match="magic"):
        load_fashion_mnist("test", root=tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataNotFoundError, match="gzip"):
        load_fashion_mnist("test", root=tmp_path)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x803, (3, 28, 28),
               bytes(range(256)) * 9 + bytes(3 * 784 - 2304))
    data = load_fashion_mnist("test", root=tmp_path)
    assert data.images.shape == (3, 1, 28, 28) and data.images.flatten()[:256].tolist() == list(range(256))


def test_image_set_checks():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ("a",))
    with pytest.raises(ValueError, match="labels"):
        ImageSet(fake_images(2), torch.zeros(3, dtype=torch.long), ("a",))


def test_transform_normalizes_resizes_and_augments():
    t = ImageTransform(size=28, channels=1, mean=(0.5,), std=(0.25,))
    x = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    assert torch.allclose(t(x), torch.full((2, 1, 28, 28), 2.0))  # (1 - 0.5) / 0.25
    rgb = ImageTransform(size=32, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)(fake_images(2))
    assert rgb.shape == (2, 3, 32, 32) and torch.equal(rgb[:, 0], rgb[:, 1])
    torch.manual_seed(0)
    a = t(fake_images(16), augment=True)
    torch.manual_seed(0)
    assert torch.equal(a, t(fake_images(16), augment=True))  # augmentation follows the torch RNG
    assert not torch.equal(a, t(fake_images(16)))
    with pytest.raises(ValueError, match="uint8"):
        t(torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="channels"):
        ImageTransform(size=8, channels=2, mean=(0.5,), std=(0.5,))(fake_images(1, c=3, s=8))
    assert ImageTransform.for_model(tiny_vit()).mean == (0.2860,)  # normalization travels in the config


# ---------------------------------------------------------------------------- probes
def test_probes_separate_and_fail_on_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = np.eye(4)[y] * 3 + rng.standard_normal((400, 4))
    assert linear_probe(x[:300], y[:300], x[300:], y[300:])["accuracy"] > 0.9
    assert knn_probe(x[:300], y[:300], x[300:], y[300:], k=10)["accuracy"] > 0.9
    noise = rng.standard_normal((400, 4))
    assert linear_probe(noise[:300], y[:300], noise[300:], y[300:])["accuracy"] < 0.5  # chance is 0.25
    with pytest.raises(ValueError, match="same D"):
        linear_probe(x[:10], y[:10], x[:10, :2], y[:10])
    with pytest.raises(ValueError, match="NaN"):
        knn_probe(np.full((4, 2), np.nan), [0, 1, 0, 1], x[:2, :2], y[:2])
    with pytest.raises(ValueError, match="k must"):
        knn_probe(x[:10], y[:10], x[:5], y[:5], k=11)


# ---------------------------------------------------------------------------- ViT end to end
def test_vit_quantize_distill_save_load_roundtrip(tmp_path):
    teacher = tiny_vit()
    student = make_student(teacher, TernaryConfig(beta=1.5))
    assert len(list(ternary_modules(student))) == 2 * 6  # q, k, v, attention out, mlp up, mlp down
    assert type(student.embeddings.patch_embeddings.projection) is torch.nn.Conv2d  # patch conv stays FP
    images = ImageSet(fake_images(64), torch.zeros(64, dtype=torch.long), ("x",))
    before = hidden_mse(make_student(teacher, TernaryConfig(beta=1.5)).eval(), teacher, images)
    cfg = DistillConfig(steps=30, batch_size=16, lr=3e-3, losses={"hidden_mse": 1, "pooled_cos": 1}, pooling="cls",
                        warmup_ratio=0.1)
    res = distill(teacher, student, range(len(images)), cfg,
                  collate=PixelCollate(images, ImageTransform.for_model(teacher)), progress=False)
    assert hidden_mse(res.student, teacher, images) < before  # distillation moves the student to the teacher
    path = save(freeze_(res.student), tmp_path / "vit")
    assert json.loads((path / "ternlib.json").read_text())["init_kwargs"] == {"add_pooling_layer": False}
    back = load(path)
    assert isinstance(back, transformers.ViTModel) and back.pooler is None
    x = images.images[:5]
    assert np.array_equal(embed_images(back, x), embed_images(res.student, x))  # bit-identical after reload
    assert load_image_encoder(path).config.image_mean == [0.2860]


def test_vit_base_online_path_on_random_weights(tmp_path):
    """The paper's setup (google/vit-base-patch16-224 + CIFAR) on a randomly initialised ViT-B
    config and a few fake RGB images: the same quantize_ / distill / probe / save / load code."""
    cfg = transformers.ViTConfig(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                                 num_attention_heads=12, intermediate_size=3072)
    teacher = transformers.ViTModel(cfg, add_pooling_layer=False).eval()
    assert ImageTransform.for_model(teacher) == ImageTransform(224, 3, (0.5,) * 3, (0.5,) * 3)
    student = make_student(teacher, TernaryConfig(beta=2.0))
    assert len(list(ternary_modules(student))) == 12 * 6
    cifar_like = ImageSet(fake_images(4, c=3, s=32), torch.tensor([0, 1, 0, 1]), ("airplane", "automobile"))
    cfg_d = DistillConfig(steps=1, batch_size=2, losses={"hidden_mse": 1.0}, pooling="cls")
    distill(teacher, student, range(4), cfg_d, collate=PixelCollate(cifar_like, ImageTransform.for_model(teacher)),
            progress=False)
    path = save(freeze_(student), tmp_path / "vitb")  # packed codes, fast kernels
    feats = embed_images(student, cifar_like, batch_size=2)
    assert feats.shape == (4, 768) and np.isfinite(feats).all()
    assert linear_probe(feats, cifar_like.labels, feats, cifar_like.labels)["accuracy"] >= 0.5
    back = load(path)
    assert back.config.hidden_size == 768 and np.array_equal(embed_images(back, cifar_like, batch_size=2), feats)


def test_load_image_encoder_errors(tmp_path):
    with pytest.raises(OSError, match="python -m ternlib vision"):
        load_image_encoder("no-such-org/no-such-vit")
    transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="supports ViT"):
        load_image_encoder(tmp_path)


def test_embed_images_pooling():
    enc = quantize_(tiny_vit())
    x = fake_images(3)
    cls, mean = embed_images(enc, x), embed_images(enc, x, pooling="mean")
    assert cls.shape == mean.shape == (3, 32) and not np.allclose(cls, mean)
    with pytest.raises(ValueError, match="pooling"):
        embed_images(enc, x, pooling="max")


# ---------------------------------------------------------------------------- torchvision ViT (nn.MultiheadAttention)
@pytest.mark.parametrize("batch_first", [True, False])
def test_linear_attention_matches_torch(batch_first):
    from ternlib.attention import LinearMultiheadAttention

    mha = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    lin = LinearMultiheadAttention.from_mha(mha)
    x = torch.randn(3, 5, 16) if batch_first else torch.randn(5, 3, 16)
    kpm = torch.zeros(3, 5, dtype=torch.bool)
    kpm[0, -2:] = True  # two padded keys in the first sequence
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    for kw in ({}, {"key_padding_mask": kpm}, {"attn_mask": causal}, {"need_weights": False, "key_padding_mask": kpm},
               {"average_attn_weights": False}):
        a, wa = mha(x, x, x, **kw)
        b, wb = lin(x, x, x, **kw)
        assert torch.allclose(a, b, atol=1e-5), kw
        assert (wa is None) == (wb is None) and (wa is None or torch.allclose(wa, wb, atol=1e-6)), kw
    u = torch.randn(5, 16)  # unbatched
    assert torch.allclose(mha(u, u, u)[0], lin(u, u, u)[0], atol=1e-5)
    with pytest.raises(NotImplementedError, match="kdim"):
        LinearMultiheadAttention.from_mha(torch.nn.MultiheadAttention(16, 4, kdim=8, vdim=8))


def test_torchvision_vit_quantize_save_load(tmp_path):
    tv = pytest.importorskip("torchvision")

    def build():
        torch.manual_seed(0)
        m = tv.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                        mlp_dim=64, num_classes=10).eval()
        torch.nn.init.normal_(m.heads.head.weight)  # torchvision starts the head at zero
        return m
    x = torch.randn(2, 3, 32, 32)
    fp = build()
    ref = fp(x)
    model = quantize_(build(), TernaryConfig())
    names = [n for n, _ in ternary_modules(model)]
    assert len(names) == 2 * 6 and not any(n.startswith("heads") for n in names)  # q, k, v, out, 2 MLP; head kept
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())
    y = model(x)
    assert y.shape == ref.shape and not torch.allclose(y, ref)  # the attention projections really are ternary
    y.sum().backward()
    assert model.encoder.layers[0].self_attention.q_proj.weight.grad is not None
    path = save(freeze_(model), tmp_path / "tv")
    back = load(path, model=build())
    assert torch.equal(back(x), model(x))


def test_experiment_config_checks():
    from ternlib.vision import ImageExperimentConfig

    assert ImageExperimentConfig.fast().distill_steps < ImageExperimentConfig().distill_steps
    with pytest.raises(ValueError, match="recipes"):
        ImageExperimentConfig(recipes=("nope",))
    with pytest.raises(ValueError, match="distill_steps"):
        ImageExperimentConfig(distill_steps=0)


def test_bad_inputs_give_clear_errors(tmp_path):
    from ternlib.attention import LinearMultiheadAttention
    from ternlib.checkpoint import CheckpointError

    with pytest.raises(ValueError, match="pooling"):
        DistillConfig(pooling="max")
    with pytest.raises(ValueError, match="mean/std"):
        ImageTransform(size=8, channels=3, mean=(0.5, 0.5), std=(0.5,))
    lin = LinearMultiheadAttention(16, 4)
    with pytest.raises(ValueError, match="embed_dim 16"):
        lin(torch.randn(5, 2, 8), torch.randn(5, 2, 8), torch.randn(5, 2, 8))
    path = save(make_student(tiny_vit()), tmp_path / "vit")
    meta = json.loads((path / "ternlib.json").read_text())
    meta["init_kwargs"] = {"add_pooling_layer": False, "evil": 1}
    (path / "ternlib.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="init_kwargs"):
        load(path)

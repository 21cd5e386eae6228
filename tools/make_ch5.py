"""Writes book/05_image_embeddings.ipynb (unexecuted); tools/run_notebooks.py then stores a full run's outputs.

Kept in the repository so the chapter's source stays editable as Python: edit here, rerun
``python tools/make_ch5.py && python tools/run_notebooks.py book/05_image_embeddings.ipynb``.
"""
from nbbuild import Notebook

nb = Notebook()
md, code, figure = nb.md, nb.code, nb.figure

md('''
# Ternary image embeddings

The recipe of the text chapters is not about text. A Vision Transformer (ViT) {cite:p}`dosovitskiy2021vit`
cuts an image into patches, embeds each patch with one linear map, and from then on it is the
same encoder as BERT: attention and MLP blocks made of `nn.Linear` layers. So the same three
steps apply: `quantize_` every Linear of the encoder, self-distill the ternary copy from the
frozen full-precision model on unlabelled images, and compare the two by what their embeddings
are good for. The paper {cite:p}`chen2024ternary` does this with ViT-B/16 on ImageNet and
evaluates with a **linear probe**: freeze the encoder, train only a linear classifier on its
features. It reports CIFAR-10 96.79% -> 94.79% and CIFAR-100 86.38% -> 82.36%.

No pretrained ViT can be installed offline, so this chapter first trains its own small ViT
teacher on Fashion-MNIST {cite:p}`xiao2017fashion`, then repeats the paper's experiment on it. The last section
shows the same code on `google/vit-base-patch16-224` and CIFAR, for a machine with internet.

## Learning objectives

After this chapter you can:

- explain how a ViT turns an image into tokens, and which of its layers become ternary
  (and which stay in full precision: the patch embedding, norms, the head);
- train a ViT teacher, ternarize it and self-distill it on unlabelled images with `ternlib`;
- evaluate image embeddings with linear and k-NN probes, against round-to-nearest ternarization
  and against raw pixels as the floor;
- compare the storage and CPU latency of the two encoders, and say why a small model gains
  less speed than a large one;
- run the paper's own setup (ViT-B/16, CIFAR) with the same functions.
''')

code('''
import os
from pathlib import Path

FAST = os.environ.get("TERNLIB_FAST", "0") == "1"  # CI runs every chapter in fast mode
ARTIFACTS = Path(os.environ.get("TERNLIB_ARTIFACTS", "artifacts"))  # relative to book/
STORED = ARTIFACTS / "image"  # the full run: teacher/, paper/model, best/model, results.json
# The full run behind this chapter (about 20 minutes on 2 CPU cores: teacher, two distillations, probes):
#   python -m ternlib vision --out book/artifacts/image
RECOMPUTE = False  # full mode: False reads STORED/results.json, True runs the experiment again (rewrites STORED)
''', ["parameters"])

code('''
import json
import tempfile
import warnings

warnings.filterwarnings("ignore")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

import ternlib
from ternlib import vision
from ternlib.images import ImageTransform, load_fashion_mnist

torch.manual_seed(0)
print(f"ternlib {ternlib.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, FAST={FAST}")
''')

md('''
## The data: Fashion-MNIST

Fashion-MNIST has 60,000 training and 10,000 test images of clothing, 28x28 pixels in grey,
ten balanced classes. It comes with Debian (`apt-get install dataset-fashion-mnist`);
`ternlib.images.load_fashion_mnist` reads its files and returns uint8 tensors `(N, 1, 28, 28)`.
The teacher trains on the training split; the distillation uses the same images **without their
labels**; the probes train on training-split features and are scored on the test split, which
no step ever trains on.
''')

figure('''
train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
print(f"train {tuple(train.images.shape)}, test {tuple(test.images.shape)}, classes: {', '.join(train.classes)}")
fig, axes = plt.subplots(3, 10, figsize=(10, 3.3))
for c in range(10):
    idx = (test.labels == c).nonzero().flatten()[:3]
    for r, i in enumerate(idx):
        axes[r, c].imshow(test.images[i, 0], cmap="gray_r")
        axes[r, c].axis("off")
    axes[0, c].set_title(test.classes[c], fontsize=8)
fig.tight_layout()
plt.show()
assert len(train) == 60_000 and len(test) == 10_000
''', "fig-ch5-samples", "**Figure 5.1** Three test images of each Fashion-MNIST class.")

md('''
## A ViT, and which of its layers become ternary

`ternlib.vision.tiny_vit_config` describes a small ViT for these images: each 28x28 image is cut
into a 4x4 grid of 7x7-pixel patches; a convolution with kernel and stride 7 (the **patch
embedding**, which is one linear map applied to each flattened patch) turns each into a vector of
width 128; a learned [CLS] token and position embeddings are added, giving 17 tokens; six
transformer blocks follow, each with the query, key, value and output projections of attention
and a two-layer MLP (128 -> 512 -> 128). The image embedding is the [CLS] token's final
hidden state, the vector the classifier head reads.

As in the paper, `quantize_` converts every `nn.Linear` of the encoder and nothing else: the
patch-embedding convolution, the position embeddings, the LayerNorms and the classifier head
stay in full precision.
''')

code('''
from transformers import ViTModel

from ternlib import TernaryConfig, quantize_, ternary_modules

enc = ViTModel(vision.tiny_vit_config(), add_pooling_layer=False)
total = sum(p.numel() for p in enc.parameters())
quantize_(enc, TernaryConfig(beta=1.5))
rows = {}
for name, m in enc.named_modules():
    kind = type(m).__name__
    if kind in ("TernaryLinear", "Conv2d", "LayerNorm"):
        r = rows.setdefault(kind, {"modules": 0, "parameters": 0})
        r["modules"] += 1
        r["parameters"] += sum(p.numel() for p in m.parameters(recurse=False))
r = rows.setdefault("embeddings ([CLS], positions)", {"modules": 1, "parameters": 0})
r["parameters"] = enc.embeddings.cls_token.numel() + enc.embeddings.position_embeddings.numel()
table = pd.DataFrame(rows).T
table["share of parameters"] = (table["parameters"] / total).map("{:.1%}".format)
display(table)
n_ternary = len(list(ternary_modules(enc)))
print(f"{n_ternary} ternary Linear layers; {total:,} parameters in all")
assert n_ternary == 6 * 6  # q, k, v, attention output, MLP up, MLP down in each of 6 blocks
assert type(enc.embeddings.patch_embeddings.projection) is torch.nn.Conv2d  # the patch embedding stays FP
''')

md('''
Nearly all the parameters sit in the ternary layers; the patch embedding is small (49 x 128
weights). That is the opposite of MiniLM, where the token-embedding table held over half of them
(chapter 1): a ViT has no vocabulary.

## The experiment

`ternlib.vision.run_experiment` (or `python -m ternlib vision --out DIR`) runs the whole chapter:

1. **teacher**: a `ViTForImageClassification` trained on the labelled training images (AdamW,
   warm-up and cosine decay), 4 epochs;
2. **round-to-nearest (RTN)**: a ternary copy with no training, the baseline distillation must beat;
3. **self-distillation**, one run per recipe, on the training images without labels, with the
   `ternlib.distill` loop of chapter 2 (the batches are `pixel_values` instead of sentences):
   *paper* (absmean beta = 2, MSE on the last hidden state) and *best* (beta = 1.5, plus the cosine
   and relational terms on the [CLS] embedding, the recipe that won in chapter 3);
4. **probes**: every encoder frozen, [CLS] embeddings of the training and test images, then a
   logistic regression (the linear probe) and a k-NN vote (k = 20, cosine) trained on the
   training features and scored on the test images; raw pixels get the same probes as the floor.

In fast mode (CI) the notebook runs it on samples (2,000 training images, 1,000 of them for the
probes, 500 test images, 30 distillation steps of the *best* recipe) starting from the stored
teacher; in full mode it reads the stored run.
''')

code('''
if FAST:
    out = Path(tempfile.mkdtemp())
    cfg = vision.ImageExperimentConfig.fast()
    res = vision.run_experiment(out, cfg, teacher_dir=STORED / "teacher", progress=False)
    models = out
elif RECOMPUTE or not (STORED / "results.json").exists():
    res = vision.run_experiment(STORED, vision.ImageExperimentConfig())
    models = STORED
else:
    res = json.loads((STORED / "results.json").read_text())
    models = STORED
teacher_meta = json.loads((STORED / "teacher" / "teacher.json").read_text())
print(f"data: {res['data']}; distillation: " + ", ".join(f"{k} {v['steps']} steps in {v['seconds']:.0f} s"
                                                        for k, v in res["distill"].items()))
print(f"experiment time: {res['seconds'] / 60:.1f} min (teacher training: {teacher_meta['seconds'] / 60:.1f} min)")
''')

md('''
## Training curves

The teacher learns the labels; the students learn only the teacher. Their loss starts where
round-to-nearest leaves them and falls fast in the first hundred steps.
''')

figure('''
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
th = pd.DataFrame(teacher_meta["history"])
a.plot(th["step"], th["loss"], label="training loss (cross-entropy)")
a.plot(th["step"], th["train_accuracy"], label="training accuracy (running, per 25 steps)")
a.axhline(res["teacher"]["test_accuracy"], color="k", ls=":", label=f"test accuracy {res['teacher']['test_accuracy']:.3f}")
a.set(xlabel="step (batch 128)", title="FP32 teacher")
a.legend(fontsize=8)
for name in res["distill"]:
    h = pd.DataFrame(json.loads((models / name / "history.json").read_text())).dropna(subset=["hidden_mse"])
    b.plot(h["step"], h["hidden_mse"], label=f"{name}: last-hidden-state MSE")
b.set(xlabel="step", ylabel="MSE to the teacher (training batch)", yscale="log", title="self-distillation")
b.legend(fontsize=8)
fig.tight_layout()
plt.show()
''', "fig-ch5-curves", "**Figure 5.2** Left: the teacher's training. Right: the distillation loss of each "
     "recipe (the paper's term, which both recipes include), on the training batches.")

md('''
## Probes: how much do the embeddings lose?

The table gives the test accuracy of each probe, and the points lost against the FP32 teacher's
embeddings. The held-out distillation loss (MSE of the last hidden state on test images) is the
most direct measure of how close each student came.
''')

code('''
probes = pd.DataFrame(res["probes"]).T.rename(columns={"linear": "linear probe", "knn": "k-NN probe"})
for col in ("linear probe", "k-NN probe"):
    probes[f"{col} vs FP32 (points)"] = 100 * (probes[col] - probes.loc["FP32", col])
probes["held-out hidden MSE"] = pd.Series(res["hidden_mse"])
display(probes.style.format({"linear probe": "{:.2%}", "k-NN probe": "{:.2%}", "linear probe vs FP32 (points)": "{:+.2f}",
                             "k-NN probe vs FP32 (points)": "{:+.2f}", "held-out hidden MSE": "{:.4f}"}, na_rep=""))
print(f"the teacher's own head: {res['teacher']['test_accuracy']:.2%} on the test images")

best = max(res["distill"], key=lambda n: res["probes"][f"ternary {n}"]["linear"])
gap = 100 * (res["probes"]["FP32"]["linear"] - res["probes"][f"ternary {best}"]["linear"])
# the facts this chapter teaches, checked on every run
for name in res["distill"]:
    assert res["hidden_mse"][f"ternary {name}"] < res["hidden_mse"]["ternary RTN"]  # distillation beats RTN
assert res["probes"][f"ternary {best}"]["linear"] > res["probes"]["ternary RTN"]["linear"]
if not FAST:  # the full run's results (a 30-step CI run on samples is too short for them)
    assert res["teacher"]["test_accuracy"] > 0.85
    assert res["probes"]["FP32"]["linear"] > res["probes"]["pixels"]["linear"] + 0.03  # the teacher learned features
''')

figure('''
fig, ax = plt.subplots(figsize=(9, 3.6))
order = [n for n in probes.index if n != "pixels"] + ["pixels"]
x = np.arange(len(order))
ax.bar(x - 0.2, 100 * probes.loc[order, "linear probe"], 0.4, label="linear probe")
ax.bar(x + 0.2, 100 * probes.loc[order, "k-NN probe"], 0.4, label="k-NN probe (k = 20)")
fp = 100 * res["probes"]["FP32"]["linear"]
ax.axhspan(fp - 2, fp, color="g", alpha=0.12, label="within 2 points of FP32 (linear)")
ax.set_xticks(x, order)
ax.set_ylim(70, 95)
ax.set_ylabel("test accuracy (%)")
ax.legend(fontsize=8, loc="lower left")
fig.tight_layout()
plt.show()
''', "fig-ch5-probes", "**Figure 5.3** Probe accuracy on the 10,000 test images (fast mode: a sample) for the "
     "FP32 teacher, the ternary encoders and raw pixels. The green band is the issue's target: within "
     "2 points of the teacher's linear probe.")

code('''
verdict = "within" if gap <= 2.0 else "outside"
display(Markdown(
    f"**Verdict.** The best ternary encoder (*{best}*) scores {100 * res['probes'][f'ternary {best}']['linear']:.2f}% "
    f"with a linear probe against the FP32 teacher's {100 * res['probes']['FP32']['linear']:.2f}%: "
    f"{gap:.2f} points lost, {verdict} the 2-point target. Round-to-nearest loses "
    f"{100 * (res['probes']['FP32']['linear'] - res['probes']['ternary RTN']['linear']):.2f} points; "
    f"raw pixels reach {100 * res['probes']['pixels']['linear']:.2f}%, so the scale that matters runs from the "
    f"pixels to the teacher, not from 0 to 100."))
''')

code('''
rtn_lin = 100 * (res["probes"]["FP32"]["linear"] - res["probes"]["ternary RTN"]["linear"])
mse_ratio = res["hidden_mse"]["ternary RTN"] / res["hidden_mse"][f"ternary {best}"]
display(Markdown(
    f"Round-to-nearest costs this small ViT only {rtn_lin:.2f} points of linear probe, far less than it "
    f"cost MiniLM in chapter 3, yet its last hidden states are {mse_ratio:.0f}x "
    f"further from the teacher's than the distilled student's (held-out MSE "
    f"{res['hidden_mse']['ternary RTN']:.4f} against {res['hidden_mse'][f'ternary {best}']:.4f})."))
''')

md('''
Why do the probes forgive round-to-nearest so much here? A linear probe is *retrained* on each
encoder's features, so any distortion that keeps the classes apart, however far it moves the
vectors, costs it nothing; the k-NN probe is retrained too, in a sense, since it compares
test images only with training images embedded by the same encoder. Fashion-MNIST's ten classes
are also easy to keep apart: raw pixels already reach most of the teacher's accuracy, so the
features have little to lose. A ternary encoder that has to stay *compatible* with the teacher
(the same index, the same downstream models, a mix of old and new vectors) needs more than
that, and that is where distillation earns its keep: the next figure and the cosine to the
teacher's embedding of the same image show it.

## Pictures of the embedding spaces

The first two principal components of the [CLS] embeddings of 2,000 test images: the same
projection, fitted on the teacher's embeddings, is applied to each encoder, so the panels can be
compared point by point.
''')

figure('''
from ternlib.distill import make_student
from ternlib.vision import embed_images

sample = test.subset(2000, seed=0)
teacher = vision.load_image_encoder(STORED / "teacher")
encoders = {"FP32 teacher": teacher,
            "ternary, round-to-nearest": ternlib.freeze_(make_student(teacher, TernaryConfig(beta=1.5))),
            f"ternary, distilled ({best})": ternlib.load(models / best / "model")}
emb = {k: embed_images(e, sample) for k, e in encoders.items()}
mean = emb["FP32 teacher"].mean(0)
_, _, vt = np.linalg.svd(emb["FP32 teacher"] - mean, full_matrices=False)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharex=True, sharey=True)
for ax, (k, e) in zip(axes, emb.items()):
    p = (e - mean) @ vt[:2].T
    sc = ax.scatter(p[:, 0], p[:, 1], c=sample.labels, cmap="tab10", s=4, alpha=0.7)
    ax.set_title(k, fontsize=10)
    ax.set_xticks([]); ax.set_yticks([])
fig.legend(sc.legend_elements()[0], sample.classes, loc="center right", fontsize=8)
fig.subplots_adjust(right=0.88)
plt.show()
ref = emb["FP32 teacher"]
cos = {k: float(np.mean(np.sum(e * ref, 1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(ref, axis=1)))) for k, e in emb.items()}
print("mean cosine to the teacher's embedding of the same image: " + ", ".join(f"{k} {v:.3f}" for k, v in cos.items()))
assert cos[f"ternary, distilled ({best})"] > cos["ternary, round-to-nearest"]
''', "fig-ch5-pca", "**Figure 5.4** Test images of each encoder projected on the teacher's first two principal "
     "components (the same projection in every panel); below it, the mean cosine between each "
     "encoder's embedding of an image and the teacher's.")

md('''
## Storage and latency

The storage report of chapter 1 works on any model. The ViT is all linear layers, so its
ternary version shrinks almost to the 2-bit floor; what is left is the patch embedding, norms,
biases and the [CLS] and position vectors.
''')

code('''
storage = pd.DataFrame({k: {"all weights (bytes)": v["total"]["bytes"], "vs FP32": v["total"]["bytes"] / v["total"]["fp32_bytes"],
                            "linear layers (bytes)": v["ternary linear"]["bytes"] or v["linear (full precision)"]["bytes"]}
                        for k, v in res["storage"].items()}).T
display(storage.style.format({"all weights (bytes)": "{:,.0f}", "linear layers (bytes)": "{:,.0f}", "vs FP32": "{:.3f}x"}))
lat = pd.DataFrame({f"batch {b}": {k: f"{v['ms'][k]:.2f} ms ({v['ratio'][k]:.2f}x)" for k in v["ms"]}
                    for b, v in res["latency"].items()})
display(lat)
tern = f"ternary {res['config']['recipes'][-1]}"
s_ratio = res["storage"][tern]["total"]["bytes"] / res["storage"][tern]["total"]["fp32_bytes"]
lat1, lat256 = res["latency"]["1"]["ratio"][tern], res["latency"]["256"]["ratio"][tern]
display(Markdown(f"The ternary encoder takes {s_ratio:.3f}x of the teacher's bytes (the paper: 0.07x for ViT-B/16); "
                 f"its CPU time is {lat1:.2f}x of the teacher's for one image and {lat256:.2f}x for a batch of 256 "
                 f"(the paper: 0.69x on a GPU with BitBLAS kernels)."))
assert s_ratio < 0.15  # nearly every weight of a ViT is in a Linear layer
''')

md('''
Storage falls to about the paper's factor. Speed does not follow on this CPU: the layers of this
small ViT are 128 wide, so each matrix product is tiny and the time goes to everything around
it (attention, norms, GELU, PyTorch's per-operator overhead), which ternary weights do not touch.
Chapter 4 showed where ternary kernels pay: large layers and few tokens, where reading the
weights from memory dominates. ViT-B's layers (768 -> 3072) are in that regime; this model's are not.

## The paper's setup: ViT-B/16 and CIFAR

On a machine with internet (Colab), the same functions run the paper's experiment; only the
teacher and the data change (a test runs this path on a randomly initialised ViT-B with a few fake
images):

```python
from ternlib import TernaryConfig, save
from ternlib.distill import DistillConfig, distill, make_student
from ternlib.images import ImageTransform, PixelCollate, load_torchvision_images
from ternlib.probe import linear_probe
from ternlib.vision import embed_images, load_image_encoder

teacher = load_image_encoder("google/vit-base-patch16-224").cuda()   # ViTModel, FP32, frozen
train = load_torchvision_images("cifar10", "train")                 # uint8 (50000, 3, 32, 32)
test = load_torchvision_images("cifar10", "test")
student = make_student(teacher, TernaryConfig(beta=2.0))             # every Linear -> ternary
cfg = DistillConfig(steps=4000, batch_size=128, lr=1e-3, losses={"hidden_mse": 1.0}, pooling="cls")
distill(teacher, student, range(len(train)), cfg,
        collate=PixelCollate(train, ImageTransform.for_model(teacher)))  # 224x224, normalized 0.5/0.5
save(student, "vit-b16-ternary")
for enc in (teacher, student):
    acc = linear_probe(embed_images(enc, train), train.labels, embed_images(enc, test), test.labels)
    print(acc["accuracy"])
```

The paper distilled on ImageNet-1k (10 epochs, batch 512); distilling on the CIFAR training
images themselves is cheaper and is what this chapter does on Fashion-MNIST.
''')

code('''
paper = pd.DataFrame([
    {"setup": "paper: ViT-B/16, CIFAR-10", "FP32": 96.79, "ternary": 94.79},
    {"setup": "paper: ViT-B/16, CIFAR-100", "FP32": 86.38, "ternary": 82.36},
    {"setup": f"here: small ViT, Fashion-MNIST ({best})", "FP32": 100 * res["probes"]["FP32"]["linear"],
     "ternary": 100 * res["probes"][f"ternary {best}"]["linear"]},
])
paper["points lost"] = paper["FP32"] - paper["ternary"]
display(paper.set_index("setup").style.format("{:.2f}"))
''')

md('''
## Summary

- A ViT is a transformer encoder after its patch embedding, so `quantize_`, `distill`, `save` and
  `load` work on it unchanged; only the batches (`pixel_values`) and the embedding (the [CLS]
  token) differ from text. `load` returns a transformers `ViTModel`.
- On this small ViT and easy dataset, probes retrained on the features forgive even
  round-to-nearest ternarization; the distance to the teacher's own embeddings does not, and a
  short self-distillation on unlabelled images closes most of it (and the probe gap with it).
- In a ViT nearly every parameter is in a Linear layer, so ternary storage approaches the
  2-bit floor; CPU speed, though, needs layers large enough for weight traffic to dominate.

## Exercises

1. Distill with `IMAGE_RECIPES["paper"]` but `pooling="mean"` instead of the [CLS] token, and
   probe mean-pooled embeddings. Which pooling loses less?
2. Ternarize the teacher with per-row scales (`TernaryConfig(granularity="row")`) and compare
   round-to-nearest and distilled probe accuracy with the per-tensor scale.
3. Replace the linear probe by a two-layer MLP probe. Does the gap between FP32 and ternary grow
   or shrink? What does that say about what the ternary encoder lost?

```{admonition} Hint for exercise 3
:class: dropdown
A more flexible probe can undo some distortions of the embedding space that a linear one cannot,
so the gap usually shrinks; the k-NN probe, with no training at all, shows the distortion most
directly.
```
''')

nb.write("05_image_embeddings.ipynb")

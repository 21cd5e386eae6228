import json

import pytest
import torch
import torch.nn as nn

from ternlib import (
    CheckpointError,
    Int8EmbeddingConfig,
    TernaryConfig,
    TernaryLinear,
    freeze_,
    load,
    quantize_,
    save,
    storage_report,
    ternary_modules,
)
from ternlib.checkpoint import CONFIG_FILE, WEIGHTS_FILE

SENTENCES = ["Ternary weights take one of three values.", "A cat sat on the mat.", "x"]


def _encode(model):
    return model.encode(SENTENCES, convert_to_tensor=True, show_progress_bar=False)


@pytest.mark.parametrize("packing", ["2bit", "5trit"])
def test_sentence_transformer_round_trip_is_bit_identical(minilm, tmp_path, packing):
    from sentence_transformers import SentenceTransformer

    quantize_(minilm, TernaryConfig(packing=packing))
    save(freeze_(minilm), tmp_path)  # compare with the packed (frozen) model: save itself leaves minilm alone
    before = _encode(minilm)
    loaded = load(tmp_path)
    assert isinstance(loaded, SentenceTransformer)
    assert len(list(ternary_modules(loaded))) == 37
    assert all(layer.frozen for _, layer in ternary_modules(loaded))
    assert torch.equal(_encode(loaded), before)
    assert not list(tmp_path.glob("model.safetensors")) and not list(tmp_path.rglob("*.bin"))


def test_minilm_linear_storage_targets(minilm, tmp_path):
    """Issue 2: MiniLM linear layers (codes + scales + biases) <= 0.066x FP32 (2-bit), <= 0.055x (5-trit)."""
    import copy

    for packing, bound in (("2bit", 0.066), ("5trit", 0.055)):
        m = quantize_(copy.deepcopy(minilm), TernaryConfig(packing=packing))
        report = storage_report(m)
        lin = report.ternary_linear
        assert lin.params == 10_764_288 + 21_120  # 37 layers' weights and biases
        assert lin.ratio <= bound, (packing, lin.ratio)
        # rows pad to whole bytes
        assert report.rows["linear codes"].ratio == pytest.approx(2 / 32 if packing == "2bit" else 8 / 5 / 32, rel=5e-3)
        # the report counts what save writes: the file holds those bytes plus the float parts
        save(m, tmp_path / packing)
        stored = report.total.bytes
        size = (tmp_path / packing / WEIGHTS_FILE).stat().st_size
        assert stored <= size <= stored * 1.01 + 100_000


def test_int8_embeddings_round_trip_and_shrink(minilm, tmp_path):
    quantize_(minilm)
    full = storage_report(minilm).total.bytes
    quantize_(minilm, Int8EmbeddingConfig(min_rows=1000))
    report = storage_report(minilm)
    assert report.rows["embeddings"].ratio < 0.3
    assert report.total.bytes < 0.45 * full
    save(freeze_(minilm), tmp_path)
    assert torch.equal(_encode(load(tmp_path)), _encode(minilm))


def test_transformers_vit_round_trip(tmp_path):
    from transformers import ViTConfig, ViTModel

    model = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64))
    freeze_(quantize_(model, TernaryConfig(granularity="row")))
    save(model, tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(pixel_values=x).last_hidden_state
        loaded = load(tmp_path)
        assert type(loaded) is ViTModel
        assert torch.equal(loaded(pixel_values=x).last_hidden_state, ref)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, ids):
        return self.fc2(torch.relu(self.fc1(self.emb(ids))))


def test_plain_torch_model_needs_a_skeleton(tmp_path):
    m = quantize_(Tiny(), TernaryConfig(rule="twn", granularity="group", group_size=4, packing="5trit"))
    save(freeze_(m), tmp_path)
    ids = torch.randint(0, 20, (3, 5))
    with pytest.raises(ValueError, match="pass an instance"):
        load(tmp_path)
    loaded = load(tmp_path, model=Tiny())
    assert torch.equal(loaded(ids), m(ids))
    with pytest.raises(CheckpointError, match="no 16->4 linear layer named 'fc2'"):
        bad = Tiny()
        bad.fc2 = nn.Linear(16, 5)
        load(tmp_path, model=bad)


@pytest.fixture()
def saved(tmp_path):
    m = quantize_(Tiny())
    save(m, tmp_path)
    return tmp_path


def test_truncated_weights(saved):
    w = saved / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="truncated"):
        load(saved, model=Tiny())


def test_corrupted_weights(saved):
    w = saved / WEIGHTS_FILE
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load(saved, model=Tiny())


def test_missing_and_foreign_files(saved, tmp_path_factory):
    with pytest.raises(FileNotFoundError):
        load(saved / "nope")
    with pytest.raises(CheckpointError, match="is a file"):
        load(saved / WEIGHTS_FILE)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(CheckpointError, match="missing"):
        load(empty)
    (empty / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(empty)
    (empty / CONFIG_FILE).write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="not a ternlib checkpoint"):
        load(empty)
    meta = json.loads((saved / CONFIG_FILE).read_text())
    (saved / CONFIG_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="version 99"):
        load(saved, model=Tiny())
    (saved / CONFIG_FILE).write_text(json.dumps(meta))
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="ternlib.safetensors is missing"):
        load(saved, model=Tiny())


def test_consistent_but_foreign_weights(saved):
    """A valid safetensors file with the wrong tensors (checksum updated) is still refused."""
    from safetensors.torch import save_file

    from ternlib.checkpoint import _sha256

    save_file({"something.else": torch.zeros(3)}, str(saved / WEIGHTS_FILE))
    meta = json.loads((saved / CONFIG_FILE).read_text())
    meta["weights_sha256"] = _sha256(saved / WEIGHTS_FILE)
    meta["weights_bytes"] = (saved / WEIGHTS_FILE).stat().st_size
    (saved / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit the model"):
        load(saved, model=Tiny())


def test_invalid_codes_in_a_consistent_file(saved):
    from safetensors.torch import load_file, save_file

    from ternlib.checkpoint import _sha256

    state = load_file(str(saved / WEIGHTS_FILE))
    state["fc1.packed"] = torch.full_like(state["fc1.packed"], 255)  # 2-bit value 3 everywhere
    save_file(state, str(saved / WEIGHTS_FILE))
    meta = json.loads((saved / CONFIG_FILE).read_text())
    meta["weights_sha256"] = _sha256(saved / WEIGHTS_FILE)
    meta["weights_bytes"] = (saved / WEIGHTS_FILE).stat().st_size
    (saved / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="corrupt 2-bit"):
        load(saved, model=Tiny())


def test_save_misuse(tmp_path):
    with pytest.raises(ValueError, match="quantize_ first"):
        save(Tiny(), tmp_path)
    with pytest.raises(TypeError):
        save("model", tmp_path)
    m = Tiny()
    quantize_(m, TernaryConfig(beta=1.0), filter_fn=lambda mod, n: n == "fc1")
    m.fc2 = TernaryLinear.from_linear(m.fc2, TernaryConfig(beta=2.0))
    with pytest.raises(ValueError, match="one TernaryConfig"):
        save(m, tmp_path)


def test_save_leaves_the_model_unchanged(tmp_path):
    """save packs a frozen copy: the model keeps its latent weights and can go on training."""
    m = quantize_(Tiny(), TernaryConfig(granularity="row"))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    save(m, tmp_path)
    assert not any(layer.frozen for _, layer in ternary_modules(m))
    after = m.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    ids = torch.randint(0, 20, (3, 5))
    m(ids).sum().backward()  # still trainable
    assert m.fc1.weight.grad is not None
    loaded = load(tmp_path, model=Tiny())
    assert torch.equal(loaded(ids), freeze_(m)(ids))  # the file holds what freezing gives


def _results(scores, preset="book", seed=0):
    return {"tasks": {t: {"main": v} for t, v in scores.items()}, "preset": preset, "seed": seed}


def _activations(model):
    return {layer.config.activations for _, layer in ternary_modules(model)}


def test_load_picks_int8_activations_where_their_recorded_quality_holds(saved):
    from ternlib.checkpoint import QUALITY_FILE, default_activations, read_quality, record_quality

    assert default_activations(saved) == "float" and read_quality(saved) is None
    assert _activations(load(saved, model=Tiny())) == {"float"}
    record_quality(saved, _results({"sts": 0.80, "genre": 0.40}), "float")
    assert default_activations(saved) == "float"          # int8 not measured yet
    record_quality(saved, _results({"sts": 0.79, "genre": 0.40}), "int8")  # 0.5 points of the average lost
    assert default_activations(saved) == "int8"
    x = torch.randint(0, 20, (3, 5))
    fast, slow = load(saved, model=Tiny()), load(saved, model=Tiny(), activations="float")
    assert _activations(fast) == {"int8"} and _activations(slow) == {"float"}
    assert not torch.equal(fast(x), slow(x))              # really another computation
    record_quality(saved, _results({"sts": 0.78, "genre": 0.40}), "int8")  # 1 point lost: float stays
    assert default_activations(saved) == "float"
    record_quality(saved, _results({"sts": 0.80, "genre": 0.40}, preset="fast"), "int8")  # measured otherwise
    assert default_activations(saved) == "float"
    q = json.loads((saved / QUALITY_FILE).read_text())
    assert set(q["activations"]) == {"float", "int8"} and q["activations"]["float"]["average"] == pytest.approx(0.6)

    save(quantize_(Tiny()), saved)                        # new weights: the old record goes
    assert not (saved / QUALITY_FILE).exists() and default_activations(saved) == "float"
    record_quality(saved, _results({"sts": 0.8}), "float")
    q = json.loads((saved / QUALITY_FILE).read_text())
    q["weights_sha256"] = "0" * 64                        # a record copied from other weights is ignored
    (saved / QUALITY_FILE).write_text(json.dumps(q))
    assert read_quality(saved) is None


def test_bad_quality_records(saved):
    from ternlib.checkpoint import QUALITY_FILE, record_quality

    with pytest.raises(ValueError, match="activations must be one of"):
        record_quality(saved, _results({"sts": 0.8}))     # the results do not say which precision
    with pytest.raises(ValueError, match="per-task scores"):
        record_quality(saved, {"tasks": {"sts": {"spearman": 0.8}}}, "float")
    (saved / QUALITY_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="quality.json is not valid JSON"):
        load(saved, model=Tiny())
    (saved / QUALITY_FILE).write_text(json.dumps({"activations": {"int4": {"average": 1, "tasks": {}}}}))
    with pytest.raises(CheckpointError, match="not a ternlib quality record"):
        load(saved, model=Tiny())
    with pytest.raises(ValueError, match="activations must be 'float' or 'int8'"):
        (saved / QUALITY_FILE).unlink()
        load(saved, model=Tiny(), activations="int4")

"""LeanEncoder: the same embeddings as SentenceTransformer.encode, by the lean BERT forward or the modules."""
import numpy as np
import pytest
import torch

from ternlib import LeanEncoder, TernaryConfig, TernaryLinear, freeze_, quantize_
from ternlib.serving import ATTENTION_GROUP, MATMUL_ATTENTION_MAX_TOKENS, _fused_qkv, _linear, attention

TEXTS = ["a query", "and a much longer document, with commas and more words than the others", "x", "two words"]


def _st_encode(model, texts, batch_size=3):
    return model.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)


def test_lean_forward_matches_encode_on_minilm(minilm_fp):
    enc = LeanEncoder(minilm_fp)
    assert enc.architecture == "lean BERT"
    got = enc.encode(TEXTS, batch_size=3)  # padded batches (a mask) and a batch of one (no mask)
    assert got.shape == (len(TEXTS), 384) and got.dtype == torch.float32
    torch.testing.assert_close(got, _st_encode(minilm_fp, TEXTS), atol=1e-5, rtol=0)
    assert isinstance(enc.encode(TEXTS[:1], convert_to_tensor=False), np.ndarray)


@pytest.mark.parametrize("activations", ["int8", "float"])
def test_lean_forward_of_a_ternary_model_is_the_models(minilm, activations):
    model = freeze_(quantize_(minilm, TernaryConfig(activations=activations))).eval()
    got = LeanEncoder(model).encode(TEXTS, batch_size=2)
    ref = _st_encode(model, TEXTS, batch_size=2)
    if activations == "float":
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    else:  # attention's rounding differs from Hugging Face's and can move an activation by one int8 step, which
        # moves that sentence's embedding by up to a few 1e-3 (how often depends on the CPU's float kernels: on an
        # AVX2-only CPU one of these 4 sentences moved, by 0.0033 at most); a wrong forward (a missed layer, a
        # wrong mask) moves the cosines far more
        torch.testing.assert_close(got, ref, atol=1e-2, rtol=0)
        assert float(torch.nn.functional.cosine_similarity(got, ref).min()) > 0.999


# sentences of many lengths, one longer than MATMUL_ATTENTION_MAX_TOKENS, more than ATTENTION_GROUP in a batch
MIXED = [" ".join(["word"] * n) + "." for n in (1, 3, 7, 2, 60, 11, 5, 19, 4, 8, 30, 6, 9, 2, 13, 17, 3, 25, 1, 40)]


@pytest.mark.parametrize("t", [7, MATMUL_ATTENTION_MAX_TOKENS + 9])  # the two-matmul form and the fused kernel
def test_attention_is_sdpa_with_padded_keys_masked(t):
    q, k, v = torch.randn(3, 2, t, 3, 4).unbind(3)  # (B, H, T, D) each
    keep = torch.arange(t)[None, :] < torch.tensor([t, 1, t - 3])[:, None]  # (B, T)
    bias = torch.zeros(3, 1, 1, t).masked_fill_(~keep[:, None, None, :], float("-inf"))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
    torch.testing.assert_close(attention(q, k, v, bias), ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(attention(q, k, v, None), torch.nn.functional.scaled_dot_product_attention(q, k, v),
                               atol=1e-6, rtol=0)


def test_lean_forward_skips_padding_and_groups_sequences_for_attention(minilm):
    """Batches longer than ATTENTION_GROUP, lengths from 3 to 60+ tokens: the lean forward's real tokens are
    Hugging Face's last hidden states, its padded positions zeros, its embeddings the model's."""
    from ternlib.serving import features

    minilm_fp = minilm.eval()
    minilm_fp.max_seq_length = 256  # MiniLM's own (set here: the test needs sequences longer than 48 tokens)
    assert len(MIXED) > ATTENTION_GROUP
    enc = LeanEncoder(minilm_fp)
    feats = features(minilm_fp, MIXED)
    assert feats["input_ids"].shape[1] > MATMUL_ATTENTION_MAX_TOKENS
    with torch.inference_mode():
        got = enc.token_embeddings(feats)  # (B, T, C)
        ref = minilm_fp[0].auto_model(**feats).last_hidden_state
    real = feats["attention_mask"].bool()
    torch.testing.assert_close(got[real], ref[real], atol=2e-5, rtol=0)
    assert torch.equal(got[~real], torch.zeros_like(got[~real]))
    torch.testing.assert_close(enc.encode(MIXED, batch_size=32), _st_encode(minilm_fp, MIXED, batch_size=32),
                               atol=1e-5, rtol=0)
    kept = LeanEncoder(minilm_fp, skip_padding=False)  # every padded token computed, as the model does
    with torch.inference_mode():
        torch.testing.assert_close(kept.token_embeddings(feats)[real], ref[real], atol=2e-5, rtol=0)
    torch.testing.assert_close(kept.encode(MIXED, batch_size=32), _st_encode(minilm_fp, MIXED, batch_size=32),
                               atol=1e-5, rtol=0)


def test_modules_path_and_a_fallback_architecture(minilm):
    ref = _st_encode(minilm, TEXTS)
    torch.testing.assert_close(LeanEncoder(minilm, lean=False).encode(TEXTS), ref, atol=1e-6, rtol=0)
    minilm[0].auto_model.config.hidden_act = "an activation the lean forward does not know"
    enc = LeanEncoder(minilm)
    assert enc.architecture == "modules"  # falls back to running the model's modules
    torch.testing.assert_close(enc.encode(TEXTS), ref, atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError, match="no lean forward"):
        enc.token_embeddings({})


def test_fused_qkv_is_exact_for_frozen_ternary_layers():
    x = torch.randn(2, 5, 64)
    for cfg in (TernaryConfig(activations="int8"), TernaryConfig(granularity="row"),
                TernaryConfig(activations="int8", granularity="row")):
        layers = [TernaryLinear(64, n, config=cfg).freeze() for n in (64, 64, 32)]
        fused = _fused_qkv(*layers)(x)  # (2, 5, 160)
        assert torch.equal(fused, torch.cat([m(x) for m in layers], -1))


def test_fused_qkv_of_linear_layers_and_of_mixed_layers():
    x = torch.randn(3, 16)
    lin = [torch.nn.Linear(16, 16) for _ in range(3)]
    torch.testing.assert_close(_fused_qkv(*lin)(x), torch.cat([m(x) for m in lin], -1), atol=1e-6, rtol=0)
    mixed = [lin[0], TernaryLinear(16, 16).freeze(), lin[2]]  # no common form: three calls
    assert torch.equal(_fused_qkv(*mixed)(x), torch.cat([m(x) for m in mixed], -1))


def test_linear_layers_are_called_without_module_machinery_and_read_live():
    x = torch.randn(3, 16)
    lin, other = torch.nn.Linear(16, 8), torch.nn.Sequential(torch.nn.Linear(16, 8))
    tern = TernaryLinear(16, 8, config=TernaryConfig(activations="int8")).freeze()
    f_lin, f_tern = _linear(lin), _linear(tern)
    assert _linear(other) is other  # anything else: the module itself
    lin.weight = torch.nn.Parameter(lin.weight.detach() * 2)  # new tensors, not in-place changes
    tern.bias = torch.nn.Parameter(tern.bias.detach() + 1.0)
    torch.testing.assert_close(f_lin(x), lin(x), atol=1e-6, rtol=0)
    assert torch.equal(f_tern(x), tern(x))
    tern.kernel = "reference"  # a kernel named on the layer afterwards is the one that runs
    assert torch.equal(f_tern(x), tern(x))


def test_bad_input_is_named(minilm_fp):
    with pytest.raises(TypeError, match="SentenceTransformer"):
        LeanEncoder(torch.nn.Linear(2, 2))
    enc = LeanEncoder(minilm_fp)
    with pytest.raises(TypeError, match="list of texts"):
        enc.encode("one text")
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode(TEXTS, batch_size=0)
    assert enc.encode([]).shape == (0, 0)


def test_encode_output_options_follow_sentence_transformers():
    """convert_to_numpy and normalize_embeddings (what the evaluation suite passes) hold for empty input too."""
    from ternlib.serving import BatchEncoder

    class Twice(BatchEncoder):
        def embed(self, texts):
            return torch.tensor([[3.0 * len(t), 4.0 * len(t)] for t in texts])

    enc = Twice()
    assert isinstance(enc.encode([], convert_to_numpy=True), np.ndarray)
    assert isinstance(enc.encode([]), torch.Tensor)
    out = enc.encode(["ab", "a"], batch_size=1, convert_to_numpy=True, normalize_embeddings=True)
    assert isinstance(out, np.ndarray) and np.allclose(out, [[0.6, 0.8], [0.6, 0.8]])
    assert torch.equal(enc.encode(["ab"]), torch.tensor([[6.0, 8.0]]))

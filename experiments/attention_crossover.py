"""Where LeanEncoder's attention choices come from: the two-matmul form against PyTorch's fused kernel, and groups.

Two measurements, each interleaved in one process (medians):

1. ``crossover``: one attention call at MiniLM's 12 heads of 32, a batch of 64 sequences (a quarter of
   them padded to half length), by ``F.scaled_dot_product_attention`` and by the two matmuls and a
   softmax of :func:`ternlib.serving.attention`, for padded lengths from 8 to 128 tokens. Below
   :data:`ternlib.serving.MATMUL_ATTENTION_MAX_TOKENS` LeanEncoder takes the matmuls.
2. ``encoder``: the benchmark's 512 sentences in batches of 64 through LeanEncoder (the ternary
   checkpoint, int8 activations), with the defaults, with attention on whole batches (one group),
   with the fused kernel only, and computing the padding as the model's own forward does
   (``skip_padding=False``): what each choice is worth end to end, and the batches' padding.
3. ``agreement``: the same 512 embeddings by LeanEncoder and by the model's own ``encode``, for FP32
   and the ternary checkpoint with int8 activations: how many differ by more than 1e-5, the smallest cosine.

Usage (about 5 minutes on 2 cores):
    python experiments/attention_crossover.py --threads 2 --out book/artifacts/kernels/lean_attention.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="book/artifacts/text/best/model")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=9, help="rounds of the end-to-end comparison")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    import torch
    import torch.nn.functional as F

    import ternlib
    import ternlib.serving as S
    from ternlib.bench import _sentences, interleaved, machine

    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict = {"machine": machine(), "matmul below": S.MATMUL_ATTENTION_MAX_TOKENS, "group": S.ATTENTION_GROUP}

    rows = []
    for t in (8, 16, 24, 32, 40, 48, 56, 64, 96, 128):
        q, k, v = torch.randn(64, 12, t, 3, 32).unbind(3)  # (B, H, T, D) each
        lens = torch.full((64,), t)
        lens[::4] = max(1, t // 2)
        bias = S.key_bias(torch.arange(t)[None] < lens[:, None], torch.float32)  # (64, 1, 1, t)
        S.MATMUL_ATTENTION_MAX_TOKENS = 10**9
        med = interleaved({"matmuls": lambda: S.attention(q, k, v, bias),
                           "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias)},
                          repeats=7, warmup=1, min_seconds=0.2)
        rows.append({"tokens": t, "sdpa ms": 1e3 * med["sdpa"], "matmuls ms": 1e3 * med["matmuls"],
                     "matmuls / sdpa": med["matmuls"] / med["sdpa"]})
        print(f"{t:4d} tokens: matmuls {1e3 * med['matmuls']:.2f} ms, sdpa {1e3 * med['sdpa']:.2f} ms "
              f"({med['matmuls'] / med['sdpa']:.2f}x)")
    out["crossover"] = {"batch": 64, "heads": 12, "head dim": 32, "rows": rows}

    default = (out["matmul below"], out["group"])
    model = ternlib.load(args.checkpoint, activations="int8")
    enc, sents = S.LeanEncoder(model), _sentences(512)
    feats = [S.features(model, sorted(sents, key=len, reverse=True)[i:i + 64]) for i in range(0, 512, 64)]
    tokens = sum(f["attention_mask"].numel() for f in feats)
    real = sum(int(f["attention_mask"].sum()) for f in feats)

    def variant(matmul_below: int, group: int):
        def run():
            S.MATMUL_ATTENTION_MAX_TOKENS, S.ATTENTION_GROUP = matmul_below, group
            return enc.encode(sents, batch_size=64)
        return run

    kept = S.LeanEncoder(model, skip_padding=False)

    def padding_kept():
        S.MATMUL_ATTENTION_MAX_TOKENS, S.ATTENTION_GROUP = default
        return kept.encode(sents, batch_size=64)

    variants = {"defaults": variant(*default), "one group a batch": variant(default[0], 10**9),
                "fused kernel only": variant(0, default[1]), "padding computed (skip_padding=False)": padding_kept}
    med = interleaved(variants, repeats=args.repeats, warmup=1)
    S.MATMUL_ATTENTION_MAX_TOKENS, S.ATTENTION_GROUP = default
    out["encoder"] = {"sentences": 512, "batch": 64, "padding fraction": 1 - real / tokens,
                      "ms": {k: 1e3 * v for k, v in med.items()},
                      "ratio to defaults": {k: v / med["defaults"] for k, v in med.items()}}
    print(f"512 sentences: {100 * (1 - real / tokens):.0f}% of the padded batches' tokens are padding; "
          + ", ".join(f"{k} {1e3 * v:.0f} ms" for k, v in med.items()))
    from ternlib import load_text_encoder

    out["agreement"] = {}
    for name, m in (("fp32", load_text_encoder().eval()), ("ternary a8", model)):
        with torch.inference_mode():
            ref = m.encode(sents, batch_size=64, convert_to_tensor=True, show_progress_bar=False).float()
        got = S.LeanEncoder(m).encode(sents, batch_size=64)
        worst = (got - ref).abs().max(1).values
        out["agreement"][name] = {"largest difference": float(worst.max()),
                                  "rows above 1e-5": int((worst > 1e-5).sum()),
                                  "smallest cosine": float(F.cosine_similarity(got, ref).min())}
        print(f"LeanEncoder against {name} model.encode:", out["agreement"][name])
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Short CPU probes for the retrieval recipe: each variant distills a fresh student for a few steps
and is scored on WordNet retrieval (book sizes: 4,000 queries over 16k+ synsets) against FP32.

Variants add terms to the ``best`` recipe: the contrastive term, the similarity KL, each with and
without a queue of the teacher's embeddings (``DistillConfig.queue_size``). Rows are appended to a
JSON file as they finish (an interrupted run continues where it stopped).

    python experiments/retrieval_probes.py --steps 200 --threads 2 --out book/artifacts/text/retrieval_probes.json
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

BEST = {"hidden_mse": 1.0, "pooled_cos": 1.0, "relational": 1.0}
VARIANTS: dict[str, dict] = {
    "best": {},
    "+contrastive 0.3": {"losses": {**BEST, "contrastive": 0.3}},
    "+contrastive 0.3, queue 4096": {"losses": {**BEST, "contrastive": 0.3}, "queue_size": 4096},
    "+similarity_kl 1, queue 4096": {"losses": {**BEST, "similarity_kl": 1.0}, "queue_size": 4096},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="seed of the data order (a replicate: another seed)")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--baseline", default="book/artifacts/text/fp32.json")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch

    from ternlib import freeze_
    from ternlib.data.corpus import training_sentences
    from ternlib.distill import distill, make_student, recipe
    from ternlib.evaluation import BOOK_SIZES, evaluate, load_results
    from ternlib.models import load_text_encoder

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    fp = load_results(args.baseline)["tasks"]["wordnet-retrieval"]["main"]
    teacher = load_text_encoder()
    texts = training_sentences()
    for name in args.variants:
        if any(r["variant"] == name and r["steps"] == args.steps and r.get("seed", 0) == args.seed for r in rows):
            continue
        tconfig, dconfig = recipe("best", steps=args.steps, bf16=True, seed=args.seed, **VARIANTS[name])
        student = make_student(teacher, tconfig)
        res = distill(teacher, student, texts, dconfig, progress=True)
        model = freeze_(copy.deepcopy(res.student))
        r = evaluate(model, tasks=["wordnet-retrieval"], sizes=BOOK_SIZES, items=False, progress=False)
        score = r["tasks"]["wordnet-retrieval"]["main"]
        rows.append({"variant": name, "steps": args.steps, "seed": args.seed, "batch_size": dconfig.batch_size,
                     "queue_size": dconfig.queue_size, "losses": dconfig.losses, "ndcg@10": score,
                     "retention": score / fp, "train_seconds": round(res.seconds, 1), "threads": args.threads,
                     "time": time.strftime("%Y-%m-%d %H:%M")})
        out.write_text(json.dumps(rows, indent=1))
        print(f"{name}: nDCG@10 {score:.4f}, retention {score / fp:.3f}, {res.seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Seconds per training step with and without the teacher cache (``distill(..., cache_teacher=True)``).

A recipe's steps on a small sample of the Brown training text, so that the run passes over it several
times: the first epoch fills the cache (every item new: the teacher runs as usual), the later ones are
served from memory. Both runs start from the same student and seed and see the same batches, one after
the other in one process, alternating ``--repeats`` times; the script prints and stores the median step
time of each run's cached epochs (the same steps in the run without a cache), the cache's memory per
item and the largest relative difference between the two runs' losses.

Usage (about 8 minutes on 2 cores):
    python experiments/teacher_cache.py --out book/artifacts/text/teacher_cache.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="large-batch-cpu")
    p.add_argument("--sentences", type=int, default=1024, help="training sample (Brown sentences)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3, help="runs of each, alternating")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    import torch

    from ternlib.data.corpus import training_sentences
    from ternlib.distill import TeacherCache, distill, make_student, recipe
    from ternlib.models import load_text_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    tconfig, dconfig = recipe(args.recipe, steps=args.steps, checkpoint_every=0)
    texts = training_sentences(args.sentences, seed=0)
    per_epoch = len(texts) // dconfig.batch_size
    if args.steps <= per_epoch:
        raise SystemExit(f"--steps {args.steps} does not reach a second epoch ({per_epoch} steps each)")
    teacher = load_text_encoder()
    out: dict = {"recipe": args.recipe, "sentences": len(texts), "steps": args.steps, "steps per epoch": per_epoch,
                 "threads": torch.get_num_threads(), "runs": {},
                 "command": "python experiments/teacher_cache.py "
                 + " ".join(argv if argv is not None else sys.argv[1:])}
    for rep in range(args.repeats):  # alternate the two: this machine's speed drifts by several percent
        for name in ("teacher", "cache"):
            cache = TeacherCache() if name == "cache" else False
            stamps: list[float] = []
            torch.manual_seed(0)
            student = make_student(teacher, tconfig)
            t0 = time.perf_counter()
            res = distill(teacher, student, texts, dconfig, cache_teacher=cache, progress=False,
                          callback=lambda step, m: stamps.append(time.perf_counter()) or {}, callback_every=1)
            seconds = [b - a for a, b in zip([t0] + stamps, stamps)]  # step k's time, k = 1..steps
            run = {"seconds per step": [round(s, 3) for s in seconds],
                   "median, first epoch": round(statistics.median(seconds[:per_epoch]), 3),
                   "median, later epochs": round(statistics.median(seconds[per_epoch:]), 3),
                   "loss": [h["loss"] for h in res.history if "loss" in h]}
            if name == "cache":
                run.update({"items": len(cache), "hits": cache.hits, "misses": cache.misses,
                            "bytes per item": round(cache.nbytes / len(cache))})
            out["runs"].setdefault(name, []).append(run)
            print(f"repeat {rep + 1}, {name}: median step {run['median, first epoch']:.2f} s (first epoch), "
                  f"{run['median, later epochs']:.2f} s (later)", flush=True)
    t, c = out["runs"]["teacher"], out["runs"]["cache"]
    ratios = [a["median, later epochs"] / b["median, later epochs"] for a, b in zip(t, c)]
    out["speed-up, later epochs, each repeat"] = [round(r, 3) for r in ratios]
    out["speed-up, later epochs"] = round(statistics.median(ratios), 3)
    out["largest relative loss difference"] = max(abs(a - b) / abs(a) for a, b in zip(t[0]["loss"], c[0]["loss"]))
    out["estimated GB for all Brown training sentences"] = round(
        c[0]["bytes per item"] * len(training_sentences()) / 1e9, 2)
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

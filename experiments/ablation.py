"""Ablation of the distillation recipe: beta, scale granularity, loss terms and training steps.

Each variant changes one thing of a base recipe, distills a fresh student for a few steps and
evaluates it on the (fast) suite against the FP32 teacher; rows are appended to a JSON file as
they finish, so an interrupted ablation continues where it stopped.

Example:
    >>> from experiments.ablation import variants
    >>> [name for name, _ in variants("beta")]
    ['beta=0.7', 'beta=1', 'beta=1.5', 'beta=2', 'beta=3']
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

AXES = ("beta", "granularity", "losses", "steps")


def variants(axis: str, steps: int = 100) -> list[tuple[str, dict[str, Any]]]:
    """``(name, overrides)`` of one axis; overrides hold ``ternary`` and ``distill`` field changes."""
    if axis == "beta":
        return [(f"beta={b:g}", {"ternary": {"beta": b}}) for b in (0.7, 1.0, 1.5, 2.0, 3.0)]
    if axis == "granularity":
        return [("tensor", {"ternary": {"granularity": "tensor"}}),
                ("row", {"ternary": {"granularity": "row"}}),
                ("group128", {"ternary": {"granularity": "group", "group_size": 128}}),
                ("group32", {"ternary": {"granularity": "group", "group_size": 32}})]
    if axis == "losses":
        return [("hidden (paper)", {"distill": {"losses": {"hidden_mse": 1.0}}}),
                ("pooled_cos", {"distill": {"losses": {"pooled_cos": 1.0}}}),
                ("hidden+pooled_cos", {"distill": {"losses": {"hidden_mse": 1.0, "pooled_cos": 1.0}}}),
                ("hidden+pooled_cos+relational", {"distill": {"losses": {"hidden_mse": 1.0, "pooled_cos": 1.0,
                                                                         "relational": 1.0}}}),
                ("+layer_mse", {"distill": {"losses": {"hidden_mse": 1.0, "pooled_cos": 1.0, "relational": 1.0,
                                                       "layer_mse": 1.0}}}),
                ("+contrastive", {"distill": {"losses": {"hidden_mse": 1.0, "pooled_cos": 1.0, "relational": 1.0,
                                                         "contrastive": 0.1}}})]
    if axis == "steps":
        return [(f"steps={s}", {"distill": {"steps": s}}) for s in (0, steps // 4, steps, steps * 4)]
    raise ValueError(f"unknown ablation axis {axis!r}; known: {AXES}")


def retention(results: dict, baseline: dict) -> dict[str, float]:
    """Per-task ``main / baseline main`` and their ``average``."""
    out = {}
    for name, scores in results["tasks"].items():
        b = baseline["tasks"].get(name, {}).get("main")
        m = scores.get("main")
        if b and m is not None and b > 0:
            out[name] = m / b
    out["average"] = sum(out.values()) / len(out) if out else math.nan
    return out


def run_ablation(
    out: str | os.PathLike,
    axes: tuple[str, ...] = AXES,
    base: str = "paper",
    steps: int = 100,
    batch_size: int = 32,
    fast: bool = True,
    sizes: dict | None = None,
    seed: int = 0,
    train_sentences: int | None = None,
    tasks: list[str] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run every variant of ``axes`` (skipping those already in ``out``) and return all rows."""
    from ternlib import TernaryConfig, freeze_
    from ternlib.data.corpus import training_sentences
    from ternlib.distill import distill, make_student, recipe
    from ternlib.evaluation import evaluate
    from ternlib.models import load_text_encoder

    path = Path(out)
    state = json.loads(path.read_text()) if path.exists() else {"rows": []}
    settings = {"base": base, "steps": steps, "batch_size": batch_size, "fast": fast, "sizes": sizes, "seed": seed,
                "tasks": tasks}
    if state.get("settings", settings) != settings:
        raise ValueError(f"{path} holds an ablation with other settings {state['settings']}; use another file")
    state["settings"] = settings
    done = {(r["axis"], r["variant"]) for r in state["rows"]}
    teacher = load_text_encoder()
    if "baseline" not in state:
        state["baseline"] = evaluate(teacher, tasks=tasks, fast=fast, sizes=sizes, seed=seed, progress=False)
        path.write_text(json.dumps(state, indent=1))
    texts = training_sentences(train_sentences, seed=seed)
    tbase, dbase = recipe(base, steps=steps, batch_size=batch_size, seed=seed, bf16=True)
    for axis in axes:
        for name, change in variants(axis, steps):
            if (axis, name) in done:
                continue
            tconfig = TernaryConfig(**{**tbase.to_dict(), **change.get("ternary", {})})
            dkw = {**dbase.to_dict(), **change.get("distill", {})}
            student = make_student(teacher, tconfig)
            t0 = time.perf_counter()
            history = []
            if dkw["steps"] > 0:  # steps=0: round-to-nearest, no training
                res = distill(teacher, student, texts, type(dbase).from_dict(dkw), progress=progress)
                history = res.history
            freeze_(student)
            results = evaluate(student, tasks=tasks, fast=fast, sizes=sizes, seed=seed, progress=False)
            row = {"axis": axis, "variant": name, "ternary_config": tconfig.to_dict(),
                   "distill_config": dkw, "final_loss": history[-1]["loss"] if history else None,
                   "seconds": round(time.perf_counter() - t0, 1), "results": results,
                   "retention": retention(results, state["baseline"])}
            state["rows"].append(row)
            path.write_text(json.dumps(state, indent=1))
            if progress:
                print(f"{axis:12s} {name:32s} retention {row['retention']['average']:.4f}", flush=True)
            del student
    return state["rows"]


def main(argv: list[str] | None = None) -> int:
    """``python experiments/ablation.py --out ablation.json --axes beta losses --steps 40``."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python experiments/ablation.py",
        description="Ablation of the distillation recipe: each variant changes one setting of the base recipe, "
        "trains a fresh ternary student for --steps steps and evaluates it (fast suite) against the FP32 teacher. "
        "Rows are appended to OUT as they finish; rerun to continue.")
    p.add_argument("--out", required=True, help="JSON file of results (appended to, resumable)")
    p.add_argument("--axes", nargs="*", choices=list(AXES), help="default: all")
    p.add_argument("--recipe", default="paper", help="base recipe")
    p.add_argument("--steps", type=int, default=100, help="steps per variant")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--full-eval", action="store_true", help="evaluate on the full suite (slow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = run_ablation(args.out, axes=tuple(args.axes or AXES), base=args.recipe, steps=args.steps,
                        batch_size=args.batch_size, fast=not args.full_eval, seed=args.seed)
    print("\n| axis | variant | final loss | average retention |\n|---|---|---:|---:|")
    for r in rows:
        loss = "-" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
        print(f"| {r['axis']} | {r['variant']} | {loss} | {r['retention']['average']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

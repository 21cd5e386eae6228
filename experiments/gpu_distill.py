"""Text distillation runs on a CUDA machine (the `device` tool), each one evaluated there.

The GPU machine has PyTorch, transformers and sentence-transformers but none of the offline
assets (the bundled MiniLM, WordNet, Brown, gensim's test files) and cannot install them, and
at most 64 MiB travels with the repository. So this tool has two halves:

``pack`` (here): writes ``.dev/`` (git-ignored): the teacher with its weights stored as float16
(45 MB instead of 91 MB; cast back to float32 there: relative change < 5e-4 per weight) and one
``data.tar.xz`` with the WordNet data files, the Brown corpus and the gensim test files.

``run`` (there): unpacks them, evaluates the teacher, then for each run spec distills a student
(the library's ``distill`` on CUDA, bf16 autocast), packs it (2-bit linears, int8 embeddings),
loads it back with ``ternlib.load`` and evaluates it with the book's sample sizes. Runs that would
not finish before ``--deadline`` are skipped (the step time is measured on the first run). It
writes ``results.json`` after every run and, at the end, the best ``--keep`` checkpoints as tar
files, so a run cut short still returns what it did.

Run spec: ``name:key=value,...`` with keys batch, steps, lr, seed, beta, text (``brown``, or
``brown+spans``: each sentence plus one random span of 3 to 12 of its words, short texts like
the retrieval task's), and any loss weight (hidden_mse, pooled_cos, relational, contrastive,
layer_mse). Unnamed losses keep the best recipe's weights.

Usage:
    python experiments/gpu_distill.py pack                                        # here: .dev/
    python experiments/gpu_distill.py run --assets .dev --out $OUT --deadline 420 \\
        --runs "b256:batch=256,steps=1200,contrastive=0.3" "b32:batch=32,steps=600,contrastive=0.3"
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GENSIM_FILES = ("lee.cor", "similarities0-1.txt", "pang_lee_polarity.cor", "simlex999.txt", "wordsim353.tsv")
TEACHER_SKIP = {"model.safetensors", "README.md", ".gitattributes", "data_config.json"}
LOSS_KEYS = {"hidden_mse", "pooled_cos", "relational", "contrastive", "layer_mse", "pooled_mse"}


def pack(dest: Path) -> None:
    from safetensors.torch import load_file, save_file

    from ternlib.data.assets import locate
    from ternlib.data.text import brown_dir, gensim_data_dir
    from ternlib.models import resolve_text_model

    teacher = Path(resolve_text_model(None))
    (dest / "teacher").mkdir(parents=True, exist_ok=True)
    for f in teacher.rglob("*"):
        rel = f.relative_to(teacher)
        if f.is_file() and str(rel) not in TEACHER_SKIP:
            (dest / "teacher" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest / "teacher" / rel)
    sd = load_file(str(teacher / "model.safetensors"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()},
              str(dest / "teacher" / "model_fp16.safetensors"), metadata={"format": "pt"})
    with tarfile.open(dest / "data.tar.xz", "w:xz") as tar:
        for pos in ("noun", "verb", "adj", "adv"):
            tar.add(locate("wordnet") / f"data.{pos}", f"wordnet/data.{pos}")
        tar.add(brown_dir(), "brown")
        for name in GENSIM_FILES:
            tar.add(gensim_data_dir() / name, f"gensim/{name}")
    for f in sorted(dest.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size / 1e6:8.2f} MB  {f}")


def parse_spec(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    kv = dict(p.split("=", 1) for p in rest.split(",") if p)
    out: dict = {"losses": {}}
    for k, v in kv.items():
        if k in LOSS_KEYS:
            out["losses"][k] = float(v)
        elif k in ("batch", "steps", "seed"):
            out[k] = int(v)
        elif k in ("lr", "beta"):
            out[k] = float(v)
        elif k == "text":
            if v not in ("brown", "brown+spans"):
                raise SystemExit(f"{spec}: text must be brown or brown+spans")
            out[k] = v
        else:
            raise SystemExit(f"{spec}: unknown key {k!r}")
    return name, out


def spans(sentences: list[str], seed: int) -> list[str]:
    """Each sentence, then one random span of 3 to 12 of its words (sentences of 6+ words)."""
    rng = random.Random(seed)
    out = list(sentences)
    for s in sentences:
        w = s.split()
        if len(w) >= 6:
            n = rng.randint(3, min(12, len(w) - 1))
            i = rng.randint(0, len(w) - n)
            out.append(" ".join(w[i:i + n]))
    return out


def run(args: argparse.Namespace) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    t_start = time.perf_counter()
    work = Path(args.work)
    data = work / "data"
    if not data.exists():
        with tarfile.open(Path(args.assets) / "data.tar.xz") as tar:
            tar.extractall(data, filter="data")
    os.environ["TERNLIB_WORDNET_DIR"] = str(data / "wordnet")
    os.environ["TERNLIB_BROWN_DIR"] = str(data / "brown")
    os.environ["TERNLIB_GENSIM_DATA_DIR"] = str(data / "gensim")
    teacher_dir = work / "teacher"
    if not (teacher_dir / "model.safetensors").exists():
        shutil.copytree(Path(args.assets) / "teacher", teacher_dir, dirs_exist_ok=True)
        sd = load_file(str(teacher_dir / "model_fp16.safetensors"))
        save_file({k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                  str(teacher_dir / "model.safetensors"), metadata={"format": "pt"})
        (teacher_dir / "model_fp16.safetensors").unlink()

    import ternlib
    from ternlib import Int8EmbeddingConfig, quantize_
    from ternlib.data.corpus import training_sentences
    from ternlib.distill import distill, make_student, recipe
    from ternlib.evaluation import BOOK_SIZES, evaluate
    from ternlib.models import load_text_encoder

    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    sizes = None if args.fast else BOOK_SIZES
    tasks = args.tasks.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                     "torch": torch.__version__, "tasks": tasks, "preset": "fast" if args.fast else "book",
                     "teacher": "all-MiniLM-L6-v2, weights through float16", "runs": {}}

    def save_results() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=1))

    teacher = load_text_encoder(str(teacher_dir)).to(device)
    t0 = time.perf_counter()
    base = evaluate(teacher, tasks=tasks, fast=args.fast, sizes=sizes, progress=False)
    results["fp32"] = {k: v["main"] for k, v in base["tasks"].items()}
    results["eval_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"teacher: {results['fp32']} ({results['eval_seconds']} s)", flush=True)
    save_results()

    sec_per_item = None  # training seconds per sentence, measured on the first run
    for spec in args.runs:
        name, o = parse_spec(spec)
        tconfig, dconfig = recipe("best", steps=o.get("steps", 600), batch_size=o.get("batch", 32), bf16=True,
                                  seed=o.get("seed", 0), lr=o.get("lr", 1e-3), log_every=50,
                                  losses={**recipe("best")[1].losses, **o["losses"]})
        if "beta" in o:
            tconfig = type(tconfig)(**{**tconfig.to_dict(), "beta": o["beta"]})
        items = dconfig.steps * dconfig.batch_size
        left = args.deadline - (time.perf_counter() - t_start)
        need = (sec_per_item or 0) * items + results["eval_seconds"] + 15
        if sec_per_item is not None and need > left:
            print(f"{name}: skipped (needs ~{need:.0f} s, {left:.0f} s left)", flush=True)
            results["runs"][name] = {"spec": spec, "skipped": f"needs ~{need:.0f} s, {left:.0f} s left"}
            save_results()
            continue
        texts = training_sentences(seed=dconfig.seed)
        if o.get("text") == "brown+spans":
            texts = spans(texts, dconfig.seed)
        try:
            torch.manual_seed(dconfig.seed)
            student = make_student(teacher, tconfig)
            res = distill(teacher, student, texts, dconfig, progress=False)
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_item = res.seconds / items  # larger batches cost less per sentence: keep the least
            sec_per_item = per_item if sec_per_item is None else min(sec_per_item, per_item)
            quantize_(student, Int8EmbeddingConfig(min_rows=1000))
            path = work / "runs" / name / "model"
            ternlib.save(student, path)
            (path.parent / "history.json").write_text(json.dumps(res.history))
            evaluated = "ternlib.load of the saved checkpoint"
            try:
                model = ternlib.load(path, device=device)
            except Exception as e:  # still rank the run: the trained student computes the same function
                print(f"{name}: ternlib.load failed ({type(e).__name__}: {e}); evaluating the student", flush=True)
                model, evaluated = student, f"the trained student (load failed: {type(e).__name__}: {e})"
            r = evaluate(model, tasks=tasks, fast=args.fast, sizes=sizes, progress=False)
            del model, student
        except Exception as e:
            import traceback

            traceback.print_exc()
            results["runs"][name] = {"spec": spec, "error": f"{type(e).__name__}: {e}"}
            save_results()
            continue
        scores = {k: v["main"] for k, v in r["tasks"].items()}
        entry = {"spec": spec, "ternary_config": tconfig.to_dict(), "distill_config": dconfig.to_dict(),
                 "train_items": len(texts), "training_seconds": round(res.seconds, 1), "scores": scores,
                 "retention": {k: scores[k] / results["fp32"][k] for k in scores},
                 "evaluated": evaluated, "final_loss": res.history[-1]}
        results["runs"][name] = entry
        save_results()
        ret = " ".join(f"{k} {100 * v:.1f}%" for k, v in entry["retention"].items())
        print(f"{name}: {res.seconds:.0f} s training ({len(texts):,} texts), retention {ret}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    done = [(n, e) for n, e in results["runs"].items() if "scores" in e]
    done.sort(key=lambda ne: -ne[1]["retention"][tasks[0]])
    for n, _ in done[: args.keep]:
        with tarfile.open(out / f"model_{n}.tar", "w") as tar:
            tar.add(work / "runs" / n, n)
    results["total_seconds"] = round(time.perf_counter() - t_start, 1)
    save_results()
    print(f"done in {results['total_seconds']} s; kept {[n for n, _ in done[: args.keep]]}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="write the assets folder (here)")
    pk.add_argument("--dest", default=".dev")
    r = sub.add_parser("run", help="distill and evaluate (on the CUDA machine)")
    r.add_argument("--assets", default=".dev")
    r.add_argument("--work", default="/tmp/ternlib_gpu")
    r.add_argument("--out", default=os.environ.get("OUT", "gpu_runs"))
    r.add_argument("--runs", nargs="+", required=True)
    r.add_argument("--tasks", default="wordnet-retrieval,lee-sts", help="comma-separated; the first ranks the runs")
    r.add_argument("--deadline", type=float, default=420, help="seconds from the start; later runs are skipped")
    r.add_argument("--keep", type=int, default=3, help="checkpoints returned (best first)")
    r.add_argument("--device", default="cuda")
    r.add_argument("--fast", action="store_true", help="fast evaluation sizes (a smoke test)")
    args = p.parse_args()
    pack(Path(args.dest)) if args.cmd == "pack" else run(args)


if __name__ == "__main__":
    main()

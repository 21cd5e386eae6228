"""The distillation loop (:func:`distill`), the student (:func:`make_student`) and resumable training
checkpoints (safetensors + JSON, no pickle): a resumed run ends bit-identical to an uninterrupted one."""
from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from ..config import TernaryConfig
from ..models import is_sentence_transformer
from ..quantize import quantize_, ternary_modules
from .cache import TeacherCache
from .config import DistillConfig
from .losses import BATCH_TERMS, batch_terms, distill_loss, encoder_outputs, item_terms

# ---------------------------------------------------------------------------- checkpoints
STATE_FILE = "state.json"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            tensors[f"state.{idx}.{name}"] = v.detach().cpu().contiguous() if torch.is_tensor(v) else torch.tensor(v)
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(path: Path, student: nn.Module, opt: torch.optim.Optimizer, step: int,
                        config: DistillConfig, tconfig: TernaryConfig, history: list[dict],
                        seconds: float = 0.0, queue: torch.Tensor | None = None) -> Path:
    """Write a resumable training checkpoint (safetensors + JSON; no pickle); ``queue``: the teacher
    embeddings queue of a run with ``queue_size``."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    trainable = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    save_file(trainable, str(path / "student.safetensors"))
    tensors, opt_meta = _optimizer_tensors(opt)
    save_file(tensors, str(path / "optimizer.safetensors"))
    save_file({"torch": torch.get_rng_state()}, str(path / "rng.safetensors"))
    if queue is not None:
        save_file({"queue": queue.detach().cpu().contiguous()}, str(path / "queue.safetensors"))
    tmp = path / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps({"step": step, "distill_config": config.to_dict(), "ternary_config": tconfig.to_dict(),
                               "optimizer": opt_meta, "history": history, "seconds": round(seconds, 1)}, indent=1))
    os.replace(tmp, path / STATE_FILE)  # the state file lands last: its presence marks a complete checkpoint
    return path


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete ``step_*`` checkpoint under ``output_dir``, or None."""
    root = Path(output_dir)
    steps = sorted(p for p in root.glob("step_*") if (p / STATE_FILE).exists())
    return steps[-1] if steps else None


def prune_checkpoints(output_dir: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete ``step_*`` checkpoints (0: keep all); returns the deleted.

    Incomplete ones (no state file: a save that was cut short) older than the newest complete one go too.
    """
    if keep <= 0:
        return []
    root = Path(output_dir)
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    complete = [p for p in steps if (p / STATE_FILE).exists()]
    if not complete:
        return []
    kept = set(complete[-keep:])
    doomed = [p for p in steps if p not in kept and p.name < complete[-1].name]
    for p in doomed:
        shutil.rmtree(p)
    return doomed


# ---------------------------------------------------------------------------- the loop
@dataclass
class DistillResult:
    student: nn.Module
    history: list[dict]
    seconds: float


def _batches(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Indices of the batch for optimizer step ``step``: reshuffled every epoch from the seed."""
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g)
    return order[pos * batch_size:(pos + 1) * batch_size].tolist()


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Mapping):  # a dict, or transformers' BatchEncoding (not a dict subclass)
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    return batch


def _rng_state(device: torch.device) -> tuple:
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _teacher_outputs(teacher: nn.Module, idx: list[int], items: list, batch: Any, collate: Callable,
                     config: DistillConfig, device: torch.device, need_layers: bool,
                     cache: TeacherCache | None) -> dict[str, torch.Tensor]:
    """The frozen teacher's outputs for ``batch`` (the collated ``items``, data indices ``idx``): from
    ``cache`` for the items it holds, from the teacher (under the run's autocast, without autograd) for the rest."""
    def run(rows: list[int]) -> dict[str, torch.Tensor]:
        sub = batch if len(rows) == len(items) else _to(collate([items[r] for r in rows]), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16), torch.no_grad():
            return encoder_outputs(teacher, sub, need_layers, config.pooling)

    if cache is None:
        return run(list(range(len(items))))
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    return cache.lookup(idx, mask, run, device)


def _accumulate(teacher: nn.Module, student: nn.Module, idx: list[int], items: list, collate: Callable,
                config: DistillConfig, queue: torch.Tensor | None, device: torch.device, need_layers: bool,
                cache: TeacherCache | None = None) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """One step's loss and gradients (left in ``.grad``) with the batch in micro-batches; see
    ``DistillConfig.micro_batch_size``. Returns the loss (detached), its terms and the teacher's embeddings."""
    if all(isinstance(x, str) for x in items):
        order = sorted(range(len(items)), key=lambda r: len(items[r]))  # similar lengths share a micro-batch
        idx, items = [idx[r] for r in order], [items[r] for r in order]
    m, n = config.micro_batch_size, len(items)
    chunks = [items[i:i + m] for i in range(0, n, m)]
    batches = [_to(collate(c), device) for c in chunks]
    w = config.losses
    coupled = {k: v for k, v in w.items() if k in BATCH_TERMS and v}
    t_outs = [_teacher_outputs(teacher, idx[i:i + m], c, b, collate, config, device, need_layers, cache)
              for i, c, b in zip(range(0, n, m), chunks, batches)]
    t_pooled = torch.cat([t["pooled"] for t in t_outs])  # (B, H)
    tokens = [float(t["mask"].float().sum()) for t in t_outs]
    parts: dict[str, float] = {}
    total = torch.zeros((), device=device)
    grad_s = None
    if coupled:  # GradCache: every student embedding without autograd, then their gradient
        states = []
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16), torch.no_grad():
            s_pooled = []
            for b in batches:
                if config.student_dropout:
                    states.append(_rng_state(device))
                s_pooled.append(encoder_outputs(student, b, need_layers, config.pooling)["pooled"])
        s_leaf = torch.cat(s_pooled).requires_grad_(True)  # (B, H)
        bparts = batch_terms(s_leaf, t_pooled, coupled, queue)
        btotal = sum(coupled[k] * v for k, v in bparts.items())
        (grad_s,) = torch.autograd.grad(btotal, s_leaf)
        total = total + btotal.detach()
        parts.update({k: float(v.detach()) for k, v in bparts.items()})
    start = 0
    for k, (chunk, b, t_out) in enumerate(zip(chunks, batches, t_outs)):
        if coupled and config.student_dropout:
            _set_rng_state(states[k], device)  # the same dropout masks as the pass that gave grad_s
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            s_out = encoder_outputs(student, b, need_layers, config.pooling)
        iparts = item_terms(s_out, t_out, w)
        # a micro-batch mean, weighted into the whole batch's: by tokens for token terms, by items otherwise
        share = {name: tokens[k] / sum(tokens) if name in ("hidden_mse", "layer_mse") else len(chunk) / n
                 for name in iparts}
        loss = sum(w[name] * share[name] * v for name, v in iparts.items())
        if grad_s is not None:  # the batch terms' gradient flows in through the embeddings
            loss = loss + (s_out["pooled"] * grad_s[start:start + len(chunk)]).sum()
        for name, v in iparts.items():
            parts[name] = parts.get(name, 0.0) + share[name] * float(v.detach())
            total = total + w[name] * share[name] * v.detach()
        if torch.isfinite(total):
            loss.backward()
        start += len(chunk)
    return total, parts, t_pooled.detach().float()


def make_student(teacher: nn.Module, tconfig: TernaryConfig | None = None, filter_fn=None) -> nn.Module:
    """A ternarized deep copy of ``teacher`` whose parameters all train (the teacher is untouched)."""
    student = quantize_(copy.deepcopy(teacher), tconfig or TernaryConfig(), filter_fn)
    for p in student.parameters():
        p.requires_grad_(True)  # the copy inherits a frozen teacher's flags
    return student


def distill(
    teacher: nn.Module,
    student: nn.Module,
    data: Sequence,
    config: DistillConfig | None = None,
    collate: Callable[[list], Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    progress: bool = True,
    callback: Callable[[int, nn.Module], dict | None] | None = None,
    callback_every: int = 0,
    keep_checkpoints: int = 2,
    cache_teacher: bool | TeacherCache = False,
) -> DistillResult:
    """Train ``student`` (ternarized, see :func:`make_student`) to match the frozen ``teacher``.

    Args:
        teacher, student: ``SentenceTransformer`` s or transformers encoders.
        data: training items (sentences, or whatever ``collate`` turns into a batch).
        collate: ``list of items -> batch``; default for sentence-transformers: ``student.preprocess``.
        output_dir: where training checkpoints ``step_XXXXXX/`` go; with ``resume`` the newest
            complete one there is loaded and training continues from it.
        stop_after: stop (after checkpointing) once this many steps are done — to simulate an
            interruption, or to train in slices.
        cache_teacher: keep the frozen teacher's outputs for each training item the first time it is in a
            batch and reuse them afterwards, instead of running the teacher again (see
            :class:`~ternlib.distill.cache.TeacherCache`: memory for speed; after the first epoch a step
            skips the teacher). True makes a cache for this call; pass a ``TeacherCache`` to share one
            between calls on the same data, teacher and config. The same training up to the rounding of
            the stored states (float16).
        keep_checkpoints: keep the newest this many ``step_*`` checkpoints in ``output_dir`` and delete
            older ones once a newer one is complete (0: keep all). A MiniLM checkpoint (latent weights and
            AdamW moments) is about 270 MB.
        callback: ``callback(step, student) -> dict`` every ``callback_every`` steps (e.g. an
            evaluation), merged into the history.

    Returns:
        the student (trained, still in training state: call ``ternlib.save`` to pack it), the
        history (``step``, ``loss``, each term, ``lr``) and the training wall time, summed over
        resumed sessions.
    """
    config = config or DistillConfig()
    if isinstance(keep_checkpoints, bool) or not isinstance(keep_checkpoints, int) or keep_checkpoints < 0:
        raise ValueError(f"keep_checkpoints must be an int >= 0 (0: keep all), got {keep_checkpoints!r}")
    if not isinstance(cache_teacher, (bool, TeacherCache)):
        raise TypeError(f"cache_teacher must be True, False or a TeacherCache, got {type(cache_teacher).__name__}")
    if len(data) < config.batch_size:
        raise ValueError(f"need at least batch_size={config.batch_size} training items, got {len(data)}")
    layers = list(ternary_modules(student))
    if not layers:
        raise ValueError("the student has no TernaryLinear: build it with make_student(teacher, TernaryConfig())")
    if any(l.frozen for _, l in layers):
        raise ValueError("the student is frozen (packed for inference) and cannot be trained")
    tconfig = layers[0][1].config
    st = is_sentence_transformer(student)
    restore_lengths = None
    need_layers = bool(config.losses.get("layer_mse", 0))
    bar = None
    try:  # the teacher's and student's settings are put back however the run ends
        if collate is None:
            if not st:
                raise ValueError("pass collate= to turn a list of items into a model batch")
            restore_lengths = (teacher.max_seq_length, student.max_seq_length)  # put back when done
            student.max_seq_length = teacher.max_seq_length = config.max_seq_length
            collate = student.preprocess
        if st and need_layers:
            for m in (teacher, student):
                m[0].auto_model.config.output_hidden_states = True

        torch.manual_seed(config.seed)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        params = [p for p in student.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        history: list[dict] = []
        step, earlier = 0, 0.0
        device = next(student.parameters()).device
        queue: torch.Tensor | None = None  # (K, H) teacher embeddings of earlier items, newest first
        out_dir = Path(output_dir) if output_dir is not None else None
        if out_dir is not None and resume:
            ckpt = latest_checkpoint(out_dir)
            if ckpt is not None:
                step, history, earlier = _resume(ckpt, student, opt, config)
                if config.queue_size and (ckpt / "queue.safetensors").exists():
                    from safetensors.torch import load_file

                    queue = load_file(str(ckpt / "queue.safetensors"))["queue"].to(device)

        cache = TeacherCache() if cache_teacher is True else None if cache_teacher is False else cache_teacher
        if cache is not None:  # what the teacher's outputs depend on
            cache.bind(("teacher", id(teacher), "items", len(data), "max_seq_length", config.max_seq_length,
                        "pooling", config.pooling, "bf16", config.bf16, "layers", need_layers))
        end = config.steps if stop_after is None else min(config.steps, stop_after)
        start = time.perf_counter()
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, initial=step, desc="distill", unit="step")
        while step < end:
            student.train(config.student_dropout)
            idx = _batches(len(data), config.batch_size, config.seed, step)
            items = [data[i] for i in idx]
            opt.zero_grad(set_to_none=True)
            if config.micro_batch_size and config.micro_batch_size < len(items):
                loss, parts, fresh = _accumulate(teacher, student, idx, items, collate, config, queue, device,
                                                 need_layers, cache)
            else:
                batch = _to(collate(items), device)
                t_out = _teacher_outputs(teacher, idx, items, batch, collate, config, device, need_layers, cache)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                    s_out = encoder_outputs(student, batch, need_layers, config.pooling)
                loss, parts = distill_loss(s_out, t_out, config.losses, queue)
                fresh = t_out["pooled"].detach().float()  # (B, H)
                if torch.isfinite(loss):
                    loss.backward()
            if config.queue_size:
                queue = fresh if queue is None else torch.cat([fresh, queue])
                queue = queue[:config.queue_size]
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"distillation loss became {float(loss)} at step {step}; lower the learning rate")
            lr = config.lr_at(step)
            for g in opt.param_groups:
                g["lr"] = lr
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            step += 1
            if step % config.log_every == 0 or step in (1, end, config.steps):  # end: where a stopped run stopped
                history.append({"step": step, "loss": float(loss.detach()), "lr": lr, **parts})
            if callback is not None and callback_every and (step % callback_every == 0 or step == config.steps):
                extra = callback(step, student) or {}
                history.append({"step": step, **extra})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
            if out_dir is not None and (
                (config.checkpoint_every and step % config.checkpoint_every == 0) or step == end
            ):
                save_training_state(out_dir / f"step_{step:06d}", student, opt, step, config, tconfig, history,
                                    earlier + time.perf_counter() - start, queue)
                prune_checkpoints(out_dir, keep_checkpoints)
    finally:
        if bar is not None:
            bar.close()
        if st and need_layers:
            for m in (teacher, student):
                m[0].auto_model.config.output_hidden_states = False
        if restore_lengths is not None:
            teacher.max_seq_length, student.max_seq_length = restore_lengths
    student.eval()
    return DistillResult(student, history, earlier + time.perf_counter() - start)


def _resume(ckpt: Path, student: nn.Module, opt: torch.optim.Optimizer,
            config: DistillConfig) -> tuple[int, list[dict], float]:
    from safetensors.torch import load_file

    meta = json.loads((ckpt / STATE_FILE).read_text())
    saved = DistillConfig.from_dict(meta["distill_config"])
    # may change between sessions (micro_batch_size: the same gradients, up to float rounding)
    operational = ("checkpoint_every", "log_every", "micro_batch_size")
    if {k: v for k, v in saved.to_dict().items() if k not in operational} != \
            {k: v for k, v in config.to_dict().items() if k not in operational}:
        raise ValueError(f"cannot resume from {ckpt}: it was trained with a different DistillConfig ({saved})")
    student.load_state_dict(load_file(str(ckpt / "student.safetensors")), strict=True)
    _load_optimizer(opt, load_file(str(ckpt / "optimizer.safetensors")), meta["optimizer"])
    torch.set_rng_state(load_file(str(ckpt / "rng.safetensors"))["torch"])
    return int(meta["step"]), list(meta["history"]), float(meta.get("seconds", 0.0))

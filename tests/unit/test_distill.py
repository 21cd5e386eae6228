import json

import pytest
import torch

from ternlib import TernaryConfig, freeze_
from ternlib.distill import DistillConfig, TeacherCache, distill, distill_loss, latest_checkpoint, make_student
from ternlib.distill.train import STATE_FILE, prune_checkpoints

SENTENCES = [f"{a} {b} near the {c}." for a in ("The cat sleeps", "A dog runs", "Birds sing", "Rain falls", "She reads")
             for b in ("quietly", "every morning", "in winter", "again") for c in ("river", "old house", "market")]


def _cfg(**kw):
    base = dict(steps=6, batch_size=4, max_seq_length=16, lr=3e-4, log_every=1, seed=3,
                losses={"hidden_mse": 1.0, "pooled_cos": 1.0})
    base.update(kw)
    return DistillConfig(**base)


def test_distillation_lowers_the_loss(minilm_fp):
    student = make_student(minilm_fp, TernaryConfig())
    res = distill(minilm_fp, student, SENTENCES, _cfg(steps=12, losses={"hidden_mse": 1.0, "pooled_cos": 1.0,
                                                                        "relational": 1.0, "layer_mse": 1.0}),
                  progress=False)
    losses = [h["loss"] for h in res.history if "loss" in h]
    assert losses[-1] < 0.6 * losses[0]
    # the teacher was not touched
    assert all(type(m).__name__ != "TernaryLinear" for m in minilm_fp.modules())


def test_resumed_run_ends_with_identical_weights(minilm_fp, tmp_path):
    cfg = _cfg(student_dropout=True, checkpoint_every=2)  # dropout on: the RNG state must be restored too
    full = distill(minilm_fp, make_student(minilm_fp), SENTENCES, cfg, progress=False).student

    out = tmp_path / "run"
    part = distill(minilm_fp, make_student(minilm_fp), SENTENCES, cfg, output_dir=out, stop_after=4, progress=False)
    assert latest_checkpoint(out).name == "step_000004"
    del part  # the "interrupted" process is gone; a fresh student resumes from disk
    resumed = distill(minilm_fp, make_student(minilm_fp), SENTENCES, cfg, output_dir=out, progress=False)
    assert latest_checkpoint(out).name == "step_000006"
    assert sorted(p.name for p in out.iterdir()) == ["step_000004", "step_000006"]  # keep_checkpoints=2
    a, b = full.state_dict(), resumed.student.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["step"] for h in resumed.history] == list(range(1, 7))


def test_prune_checkpoints_keeps_the_newest_complete_ones(tmp_path):
    for step, complete in ((2, True), (4, True), (5, False), (6, True), (8, False)):
        (tmp_path / f"step_{step:06d}").mkdir()
        if complete:
            (tmp_path / f"step_{step:06d}" / STATE_FILE).write_text("{}")
    assert prune_checkpoints(tmp_path, 0) == []
    deleted = prune_checkpoints(tmp_path, 2)
    # step 5 was cut short before step 6 completed: gone; step 8 may still be being written: kept
    assert [p.name for p in deleted] == ["step_000002", "step_000005"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000004", "step_000006", "step_000008"]
    assert latest_checkpoint(tmp_path).name == "step_000006"
    with pytest.raises(ValueError, match="keep_checkpoints"):
        distill(None, None, [], keep_checkpoints=-1)


def test_resume_with_a_different_config_is_refused(minilm_fp, tmp_path):
    distill(minilm_fp, make_student(minilm_fp), SENTENCES, _cfg(steps=2), output_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different DistillConfig"):
        distill(minilm_fp, make_student(minilm_fp), SENTENCES, _cfg(steps=3, lr=1e-3), output_dir=tmp_path,
                progress=False)


def test_bad_inputs(minilm_fp):
    with pytest.raises(ValueError, match="unknown loss terms"):
        DistillConfig(losses={"kl": 1.0})
    with pytest.raises(ValueError, match="positive weight"):
        DistillConfig(losses={"hidden_mse": 0.0})
    with pytest.raises(ValueError, match="steps"):
        DistillConfig(steps=0)
    with pytest.raises(ValueError, match="no TernaryLinear"):
        distill(minilm_fp, minilm_fp, SENTENCES, _cfg(), progress=False)
    with pytest.raises(ValueError, match="at least batch_size"):
        distill(minilm_fp, make_student(minilm_fp), SENTENCES[:2], _cfg(), progress=False)
    frozen = freeze_(make_student(minilm_fp))
    with pytest.raises(ValueError, match="frozen"):
        distill(minilm_fp, frozen, SENTENCES, _cfg(), progress=False)


def test_lr_schedule():
    c = DistillConfig(steps=100, lr=1.0, warmup_ratio=0.1, schedule="cosine")
    assert c.lr_at(0) == pytest.approx(0.1) and c.lr_at(9) == pytest.approx(1.0)
    assert c.lr_at(99) < 0.01
    lin = DistillConfig(steps=100, lr=1.0, warmup_ratio=0.0, schedule="linear")
    assert lin.lr_at(50) == pytest.approx(0.5)


def test_loss_terms_are_zero_for_identical_outputs():
    h = torch.randn(2, 5, 8)
    pooled = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    out = {"hidden": h, "mask": torch.ones(2, 5), "pooled": pooled, "layers": (h, h)}
    names = ("hidden_mse", "layer_mse", "pooled_cos", "pooled_mse", "relational", "contrastive", "similarity_kl")
    total, parts = distill_loss(out, out, {k: 1.0 for k in names})
    assert float(total) == pytest.approx(0.0, abs=1e-5) and set(parts) == set(names)
    queue = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    total, _ = distill_loss(out, out, {k: 1.0 for k in names}, queue)
    assert float(total) == pytest.approx(0.0, abs=1e-5)


def test_contrastive_term_rewards_matching_pairs():
    t = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    s_good = torch.nn.functional.normalize(t + 0.05 * torch.randn(8, 16), dim=-1)
    s_bad = s_good[torch.roll(torch.arange(8), 1)]  # every student paired with another sentence
    mk = lambda p: {"hidden": torch.zeros(8, 2, 16), "mask": torch.ones(8, 2), "pooled": p, "layers": ()}
    good, _ = distill_loss(mk(s_good), mk(t), {"contrastive": 1.0})
    bad, _ = distill_loss(mk(s_bad), mk(t), {"contrastive": 1.0})
    assert float(good) < float(bad)


def test_queue_adds_the_negatives_the_batch_lacks():
    # a batch of 2 whose students sit on a queued teacher embedding, not on their own: in-batch
    # contrastive cannot see the mistake, the queue can; similarity_kl likewise
    g = torch.Generator().manual_seed(0)
    t = torch.nn.functional.normalize(torch.randn(2, 16, generator=g), dim=-1)
    queue = torch.nn.functional.normalize(torch.randn(64, 16, generator=g), dim=-1)
    s = torch.nn.functional.normalize(t + 3 * queue[:2], dim=-1)  # pulled towards two queued items
    mk = lambda p: {"hidden": torch.zeros(2, 2, 16), "mask": torch.ones(2, 2), "pooled": p, "layers": ()}
    for term in ("contrastive", "similarity_kl"):
        batch_only, _ = distill_loss(mk(s), mk(t), {term: 1.0})
        with_queue, _ = distill_loss(mk(s), mk(t), {term: 1.0}, queue)
        assert float(with_queue) > float(batch_only) + 1.0, term


def test_resumed_run_with_a_queue_ends_with_identical_weights(minilm_fp, tmp_path):
    cfg = _cfg(queue_size=8, losses={"hidden_mse": 1.0, "contrastive": 1.0, "similarity_kl": 1.0})
    full = distill(minilm_fp, make_student(minilm_fp), SENTENCES, cfg, progress=False).student
    out = tmp_path / "run"
    distill(minilm_fp, make_student(minilm_fp), SENTENCES, cfg, output_dir=out, stop_after=3, progress=False)
    assert (latest_checkpoint(out) / "queue.safetensors").exists()
    resumed = distill(minilm_fp, make_student(minilm_fp), SENTENCES, cfg, output_dir=out, progress=False).student
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    with pytest.raises(ValueError, match="queue_size"):
        DistillConfig(queue_size=-1)


def test_distill_leaves_lengths_and_trainability_as_they_were(minilm_fp):
    length = minilm_fp.max_seq_length
    first = make_student(minilm_fp)
    distill(minilm_fp, first, SENTENCES, _cfg(steps=1), progress=False)
    assert minilm_fp.max_seq_length == length and first.max_seq_length == length  # saved models keep 256
    second = make_student(minilm_fp)  # made after the teacher was frozen by distill
    n_all = sum(p.numel() for p in second.parameters())
    assert sum(p.numel() for p in second.parameters() if p.requires_grad) == n_all


@pytest.mark.parametrize("losses", [
    {"hidden_mse": 1.0, "pooled_cos": 1.0, "relational": 1.0, "contrastive": 0.3},
    {"hidden_mse": 1.0, "layer_mse": 0.5, "pooled_mse": 1.0, "similarity_kl": 1.0},
    {"hidden_mse": 1.0, "pooled_cos": 1.0},  # no batch-coupled term: plain accumulation
])
def test_micro_batches_give_the_whole_batch_gradient(minilm_fp, losses):
    from ternlib.distill.losses import encoder_outputs
    from ternlib.distill.train import _accumulate

    student = make_student(minilm_fp, TernaryConfig())
    given = SENTENCES[:9][::-1]
    items = sorted(given, key=len)  # micro-batches are sorted by length (the loss does not depend on the order)
    cfg = _cfg(batch_size=9, micro_batch_size=4, losses=losses)
    layers = "layer_mse" in losses
    length = minilm_fp.max_seq_length  # a shared fixture: put back below
    for m in (minilm_fp, student):
        m.max_seq_length = 16
        m[0].auto_model.config.output_hidden_states = layers
    queue = torch.nn.functional.normalize(torch.randn(7, 384), dim=-1)
    try:
        batch = student.preprocess(items)
        with torch.no_grad():
            t_out = encoder_outputs(minilm_fp, batch, layers)
        loss, parts = distill_loss(encoder_outputs(student, batch, layers), t_out, losses, queue)
        loss.backward()
        whole = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
        student.zero_grad(set_to_none=True)
        mloss, mparts, fresh = _accumulate(minilm_fp, student, list(range(len(given))), given, student.preprocess,
                                           cfg, queue, torch.device("cpu"), layers)
        micro = {n: p.grad for n, p in student.named_parameters() if p.grad is not None}
    finally:
        for m in (minilm_fp, student):
            m[0].auto_model.config.output_hidden_states = False
            m.max_seq_length = length
    assert float(mloss) == pytest.approx(float(loss.detach()), rel=1e-4)
    assert mparts.keys() == parts.keys()
    assert all(mparts[k] == pytest.approx(parts[k], rel=1e-3, abs=1e-7) for k in parts)
    torch.testing.assert_close(fresh, t_out["pooled"], rtol=1e-4, atol=1e-5)
    assert whole.keys() == micro.keys() and len(whole) > 10
    for n in whole:
        torch.testing.assert_close(micro[n], whole[n], rtol=2e-3, atol=1e-6, msg=n)


def test_micro_batched_run_trains_and_resumes_from_a_whole_batch_checkpoint(minilm_fp, tmp_path):
    losses = {"hidden_mse": 1.0, "pooled_cos": 1.0, "relational": 1.0, "contrastive": 0.3}
    out = tmp_path / "run"
    distill(minilm_fp, make_student(minilm_fp), SENTENCES, _cfg(batch_size=8, losses=losses, steps=8),
            output_dir=out, stop_after=2, progress=False)
    cfg = _cfg(batch_size=8, micro_batch_size=3, losses=losses, student_dropout=False, steps=8)
    res = distill(minilm_fp, make_student(minilm_fp), SENTENCES, cfg, output_dir=out, progress=False)
    assert latest_checkpoint(out).name == "step_000008"
    trace = [h["loss"] for h in res.history if "loss" in h]
    assert trace[-1] < trace[0]
    with pytest.raises(ValueError, match="micro_batch_size"):
        DistillConfig(micro_batch_size=-1)


def test_teacher_cache_assembles_a_batch_from_items_cached_in_other_batches(minilm_fp):
    from ternlib.distill.losses import encoder_outputs

    items = ["A short one.", "A much longer sentence about the old house near the river.", "Rain.",
             "Birds sing every morning in winter near the market.", "She reads again.", "The dog runs."]
    batch = minilm_fp.preprocess(items)
    want = encoder_outputs(minilm_fp, batch)
    cache, calls = TeacherCache(), []

    def lookup(idx, mask):
        def compute(rows):  # the teacher on the rows (positions in idx) not cached yet
            calls.append([idx[r] for r in rows])
            return encoder_outputs(minilm_fp, minilm_fp.preprocess([items[idx[r]] for r in rows]))
        return cache.lookup(idx, mask, compute)

    with torch.no_grad():
        first = lookup([0, 2, 4], minilm_fp.preprocess(items[0:5:2])["attention_mask"])
        got = lookup(list(range(6)), batch["attention_mask"])  # padded to another length
    assert first["hidden"].shape[1] < got["hidden"].shape[1] and calls == [[0, 2, 4], [1, 3, 5]]
    assert (cache.hits, cache.misses, len(cache)) == (3, 6, 6)
    valid = batch["attention_mask"].bool()
    torch.testing.assert_close(got["hidden"][valid], want["hidden"][valid], atol=5e-3, rtol=2e-3)  # float16 store
    assert float(got["hidden"][~valid].abs().max()) == 0.0
    torch.testing.assert_close(got["pooled"], want["pooled"], atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # all cached now: the teacher does not run
        again = lookup([5, 1], batch["attention_mask"][[5, 1]])
    assert len(calls) == 2 and cache.nbytes > 0
    torch.testing.assert_close(again["pooled"], got["pooled"][[5, 1]])
    with pytest.raises(RuntimeError, match="tokens cached"):  # an item's tokens must match its cached states
        lookup([1, 5], batch["attention_mask"][[5, 1]])


def test_teacher_cache_without_an_attention_mask_runs_the_teacher_on_new_rows_only():
    calls = []

    def lookup(idx):  # images: no attention mask, every row has all of its 5 tokens
        def compute(rows):
            calls.append([idx[r] for r in rows])
            x = torch.tensor([float(idx[r]) for r in rows])
            return {"hidden": x[:, None, None].expand(-1, 5, 3).clone(), "mask": torch.ones(len(rows), 5),
                    "pooled": x[:, None].expand(-1, 3).clone()}
        return cache.lookup(idx, None, compute)

    cache = TeacherCache()
    lookup([1, 2])
    out = lookup([2, 3, 1])
    assert calls == [[1, 2], [3]] and (cache.hits, cache.misses) == (2, 3)
    assert out["hidden"].shape == (3, 5, 3) and out["mask"].shape == (3, 5)
    assert out["hidden"][:, :, 0].tolist() == [[2.0] * 5, [3.0] * 5, [1.0] * 5]
    assert out["pooled"][:, 0].tolist() == [2.0, 3.0, 1.0]


@pytest.mark.parametrize("micro", [0, 3])
def test_cached_teacher_trains_like_the_teacher(minilm_fp, micro):
    data = SENTENCES[:8]  # two steps an epoch: steps 3-6 are all cached
    losses = {"hidden_mse": 1.0, "pooled_cos": 1.0, "relational": 1.0, "contrastive": 0.3}
    cfg = _cfg(batch_size=4, micro_batch_size=micro, losses=losses)
    plain = distill(minilm_fp, make_student(minilm_fp), data, cfg, progress=False)
    cache = TeacherCache()
    cached = distill(minilm_fp, make_student(minilm_fp), data, cfg, progress=False, cache_teacher=cache)
    assert (cache.hits, cache.misses) == (16, 8)
    trace = [[h["loss"] for h in r.history if "loss" in h] for r in (plain, cached)]
    assert trace[0][:2] == trace[1][:2]  # the first epoch runs the teacher: identical
    assert trace[1] == pytest.approx(trace[0], rel=2e-3)
    length = minilm_fp.max_seq_length
    with pytest.raises(ValueError, match="new TeacherCache"):  # the cache holds 16-token states of this teacher
        distill(minilm_fp, make_student(minilm_fp), data, _cfg(batch_size=4, max_seq_length=8), progress=False,
                cache_teacher=cache)
    assert minilm_fp.max_seq_length == length  # a run that fails puts the teacher's sequence length back
    with pytest.raises(TypeError, match="cache_teacher"):
        distill(minilm_fp, make_student(minilm_fp), data, cfg, progress=False, cache_teacher="yes")


def test_teacher_cache_experiment_measures_both_runs(tmp_path):
    from experiments import teacher_cache

    out = tmp_path / "tc.json"
    assert teacher_cache.main(["--recipe", "paper", "--sentences", "64", "--steps", "3", "--repeats", "1",
                               "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    runs = res["runs"]
    assert len(runs["teacher"][0]["seconds per step"]) == len(runs["cache"][0]["seconds per step"]) == 3
    assert (runs["cache"][0]["hits"], runs["cache"][0]["misses"]) == (32, 64)  # steps per epoch: 2 of 32
    assert res["largest relative loss difference"] < 1e-3 and res["speed-up, later epochs"] > 0
    with pytest.raises(SystemExit, match="second epoch"):
        teacher_cache.main(["--recipe", "paper", "--sentences", "64", "--steps", "2"])

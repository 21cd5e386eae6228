"""The bare distillation loop of chapter 2 (frozen teacher, ``quantize_``-d copy, masked hidden-state
MSE, AdamW) agrees with ``ternlib.distill`` and lowers its loss."""
import copy

import torch

from ternlib import TernaryConfig, quantize_
from ternlib.distill import distill_loss, encoder_outputs, make_student

SENTENCES = ["A man is playing a guitar on stage.", "How do I reset my password?",
             "The cat sleeps on the warm windowsill.", "Heavy rain is expected over the long weekend."]


def _batch(model, max_length=16):
    """Tokenized, padded batch of SENTENCES with its attention mask ``a`` (B, ell)."""
    return model.tokenizer(SENTENCES, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


def _scratch_student(teacher):
    """The chapter's student: a deep copy, ternarized, every parameter trainable, dropout off."""
    student = quantize_(copy.deepcopy(teacher), TernaryConfig(beta=2.0))
    student.requires_grad_(True)
    return student.eval()


def _hidden_mse(student, h_teacher, batch):
    """Mean over real tokens of ||h^S - h^T||^2 / H, written out as in the chapter."""
    a = batch["attention_mask"].float()
    h_student = student[0].auto_model(**batch).last_hidden_state
    return (((h_student - h_teacher) ** 2).mean(-1) * a).sum() / a.sum()


def test_scratch_loss_equals_library_hidden_mse(minilm_fp):
    teacher = minilm_fp.eval()
    batch = _batch(teacher)
    assert batch["attention_mask"].min() == 0  # the batch has padding, so the mask matters
    with torch.no_grad():
        h_teacher = teacher[0].auto_model(**batch).last_hidden_state
        ours = float(_hidden_mse(_scratch_student(teacher), h_teacher, batch))
        student = make_student(teacher, TernaryConfig(beta=2.0))
        _, parts = distill_loss(encoder_outputs(student, batch), encoder_outputs(teacher, batch), {"hidden_mse": 1.0})
    assert abs(parts["hidden_mse"] - ours) < 1e-5


def test_scratch_loop_lowers_the_loss_and_leaves_the_teacher_alone(minilm_fp):
    teacher = minilm_fp.eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    batch = _batch(teacher)
    with torch.no_grad():
        h_teacher = teacher[0].auto_model(**batch).last_hidden_state
    student = _scratch_student(teacher)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = _hidden_mse(student, h_teacher, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())

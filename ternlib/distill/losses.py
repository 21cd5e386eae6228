"""The distillation losses, and :func:`encoder_outputs`: one view of a SentenceTransformer or a
transformers encoder's outputs (hidden states, mask, pooled embedding) that every loss term reads.

Terms (weights in :class:`~ternlib.distill.DistillConfig`): ``hidden_mse``, ``layer_mse``,
``pooled_cos``, ``pooled_mse``, ``relational`` and ``contrastive`` (see :mod:`ternlib.distill`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import is_sentence_transformer

CONTRASTIVE_TEMPERATURE = 0.05


def encoder_outputs(model: nn.Module, batch: Any, layers: bool = False,
                    pooling: str = "mean") -> dict[str, torch.Tensor]:
    """Run ``model`` on ``batch`` and return ``hidden`` (B, T, H), ``mask`` (B, T), ``pooled`` (B, H)
    and with ``layers`` also ``layers`` (a tuple of (B, T, H)).

    ``model`` is a ``SentenceTransformer`` (``batch`` from ``model.preprocess``; pooled = its own
    sentence embedding) or a transformers encoder (``batch`` a dict of its inputs, e.g.
    ``pixel_values`` for a ViT; pooled = the normalized ``pooling`` of the last hidden state: the
    masked "mean" of the tokens, or the first ("cls") token).
    """
    if is_sentence_transformer(model):
        out = model(dict(batch))
        hidden = out["token_embeddings"]  # (B, T, H)
        mask = out.get("attention_mask", torch.ones(hidden.shape[:2], device=hidden.device))
        res = {"hidden": hidden, "mask": mask.to(hidden.dtype),
               "pooled": F.normalize(out["sentence_embedding"].float(), dim=-1)}
        if layers:
            if "all_layer_embeddings" not in out:
                raise RuntimeError("the model did not return its hidden states (output_hidden_states)")
            res["layers"] = tuple(out["all_layer_embeddings"])
        return res
    out = model(**batch, output_hidden_states=layers, return_dict=True)
    hidden = out.last_hidden_state  # (B, T, H)
    mask = batch.get("attention_mask") if isinstance(batch, dict) else None
    mask = torch.ones(hidden.shape[:2], device=hidden.device) if mask is None else mask
    mask = mask.to(hidden.dtype)
    if pooling == "cls":
        pooled = hidden[:, 0]  # (B, H)
    else:
        pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
    res = {"hidden": hidden, "mask": mask, "pooled": F.normalize(pooled.float(), dim=-1)}
    if layers:
        res["layers"] = tuple(out.hidden_states)
    return res


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid tokens (``mask`` (B, T)) of the per-token MSE between ``a`` and ``b`` (B, T, H)."""
    err = (a.float() - b.float()).pow(2).mean(-1)  # (B, T)
    return (err * mask).sum() / mask.sum().clamp_min(1)


BATCH_TERMS = ("relational", "contrastive", "similarity_kl")  # terms that couple the items of a batch


def item_terms(student_out: dict, teacher_out: dict, weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """The terms that are means over tokens or items (every term but :data:`BATCH_TERMS`), unweighted."""
    mask = teacher_out["mask"].float()
    parts: dict[str, torch.Tensor] = {}
    if weights.get("hidden_mse", 0):
        parts["hidden_mse"] = masked_mse(student_out["hidden"], teacher_out["hidden"], mask)
    if weights.get("layer_mse", 0):
        pairs = list(zip(student_out["layers"][1:], teacher_out["layers"][1:]))  # skip the embedding output
        parts["layer_mse"] = sum(masked_mse(s, t, mask) for s, t in pairs) / len(pairs)
    s, t = student_out["pooled"], teacher_out["pooled"]  # (B, H), unit norm
    if weights.get("pooled_cos", 0):
        parts["pooled_cos"] = (1 - (s * t).sum(-1)).mean()
    if weights.get("pooled_mse", 0):
        parts["pooled_mse"] = (s - t).pow(2).sum(-1).mean()
    return parts


def batch_terms(s: torch.Tensor, t: torch.Tensor, weights: dict[str, float],
                queue: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The :data:`BATCH_TERMS` of unit-norm pooled embeddings ``s`` (student) and ``t`` (teacher), (B, H)."""
    parts: dict[str, torch.Tensor] = {}
    if weights.get("relational", 0):
        parts["relational"] = (s @ s.T - t @ t.T).pow(2).mean()
    if weights.get("contrastive", 0) or weights.get("similarity_kl", 0):
        keys = t if queue is None else torch.cat([t, queue.to(t.dtype)])  # (B + K, H) candidates, batch first
        s_logits = (s @ keys.T).float() / CONTRASTIVE_TEMPERATURE  # (B, B + K)
        t_logits = (t @ keys.T).float().detach() / CONTRASTIVE_TEMPERATURE
    if weights.get("contrastive", 0):  # the teacher's own sentence is the positive
        target = torch.arange(len(s), device=s.device)
        # minus its value for a perfect teacher copy: zero at the optimum, like every other term
        parts["contrastive"] = F.cross_entropy(s_logits, target) - F.cross_entropy(t_logits, target)
    if weights.get("similarity_kl", 0):  # KL(teacher || student) of softmax over the candidates' similarities
        parts["similarity_kl"] = F.kl_div(F.log_softmax(s_logits, dim=-1), F.log_softmax(t_logits, dim=-1),
                                          log_target=True, reduction="batchmean")
    return parts


def distill_loss(student_out: dict, teacher_out: dict, weights: dict[str, float],
                 queue: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the loss terms and each term's value.

    ``queue`` (K, H): unit-norm teacher embeddings of earlier training items. The teacher is frozen,
    so they never go stale; ``contrastive`` takes them as extra negatives and ``similarity_kl``
    compares the two models' similarity distributions over them.
    """
    parts = {**item_terms(student_out, teacher_out, weights),
             **batch_terms(student_out["pooled"], teacher_out["pooled"], weights, queue)}
    total = sum(weights[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}

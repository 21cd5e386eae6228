"""Self-taught distillation: a frozen full-precision teacher teaches its ternary copy.

The teacher is the original model (frozen, eval mode); the student is ``quantize_``-ed copy
whose latent FP weights are trained through the straight-through estimator. Losses (weights in
:class:`DistillConfig`; the paper uses only ``hidden_mse``):

- ``hidden_mse``: MSE between the student's and teacher's last hidden states (valid tokens);
- ``layer_mse``: the same for every intermediate hidden state;
- ``pooled_cos``: ``1 - cos`` between pooled, normalized sentence embeddings;
- ``pooled_mse``: MSE between those embeddings;
- ``relational``: MSE between the batch similarity matrices ``E E^T`` of student and teacher;
- ``contrastive``: InfoNCE, each student embedding must pick its own teacher embedding among the
  batch's (temperature 0.05), a retrieval-shaped objective;
- ``similarity_kl``: KL divergence between the teacher's and the student's softmax over their
  similarities to the batch's teacher embeddings (a soft ranking to copy).

With ``queue_size`` both last terms also compare with a queue of the teacher's embeddings of
earlier batches: the teacher is frozen, so the queue never goes stale (MoCo's momentum encoder
exists because its keys drift; here they cannot), and a batch of 32 sees thousands of negatives.

Training state (latent weights, AdamW moments, RNG, step) is checkpointed as safetensors + JSON,
and a resumed run ends with exactly the weights of an uninterrupted one.
"""
from .cache import TeacherCache
from .config import LOSSES, RECIPES, DistillConfig, recipe
from .losses import CONTRASTIVE_TEMPERATURE, distill_loss, encoder_outputs, masked_mse
from .train import STATE_FILE, DistillResult, distill, latest_checkpoint, make_student, save_training_state

__all__ = ["CONTRASTIVE_TEMPERATURE", "LOSSES", "RECIPES", "STATE_FILE", "DistillConfig", "DistillResult",
           "TeacherCache", "distill", "distill_loss", "encoder_outputs", "latest_checkpoint", "make_student",
           "masked_mse", "recipe", "save_training_state"]

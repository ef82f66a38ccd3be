"""Defensive distillation (the ``distillation`` recipe; Papernot et al. 2016, arXiv:1511.04508, section IV).

1. A teacher F is trained on the hard labels with its softmax at temperature T: ``softmax(Z(x) / T)``.
2. Its soft labels ``F^T(x) = softmax(Z_F(x) / T)`` on the training set are computed once (eval mode: no training
   dropout, the teacher as deployed).
3. A student of the same architecture is trained at the same T on those soft labels: the loss is the
   cross-entropy ``-sum_i F^T_i(x) log softmax(Z_S(x) / T)_i``.
4. The student is deployed at T = 1: the checkpoint's logits are the student's raw ``Z_S(x)``.

Both are trained with the run's dropout rate r, Adam and the run's learning rate; the teacher for
``teacher_epochs`` (default: the run's epochs), the student for the run's epochs. Training at T makes the student's
logits about T times larger than a standard model's, so at T = 1 its softmax saturates and gradients of the
softmax (or of cross-entropy) vanish; Carlini & Wagner (2017, section VIII) showed that an attack on the logits is
unaffected (T = 100 is the setting they evaluated). No T^2 gradient rescaling is applied: Adam's steps do not
depend on the gradient's scale.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from payoffs.training import FitContext, accuracy


def soft_cross_entropy(logits: torch.Tensor, soft_labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """``mean_x -sum_i p_i log softmax(logits / T)_i`` for soft labels ``p``."""
    return -(soft_labels * F.log_softmax(logits / temperature, dim=1)).sum(1).mean()


@torch.no_grad()
def soft_labels(model: nn.Module, x: torch.Tensor, temperature: float, batch_size: int = 1000) -> torch.Tensor:
    """``softmax(Z(x) / T)`` of ``model`` in eval mode (its mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([F.softmax(model(x[i:i + batch_size]) / temperature, dim=1)
                          for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def fit_distillation(ctx: FitContext) -> tuple[nn.Module, dict]:
    """The ``distillation`` recipe (see the module docstring); returns the student and the teacher's accuracy."""
    temperature = float(ctx.params["temperature"])
    teacher = ctx.new_model()
    ctx.run_epochs(teacher, ctx.y_train, lambda m, xb, yb: F.cross_entropy(m(xb) / temperature, yb),
                   int(ctx.params["teacher_epochs"]), "teacher")
    labels = soft_labels(teacher, ctx.x_train, temperature)
    teacher.eval()
    teacher_accuracy = accuracy(teacher, ctx.data.x_test, ctx.data.y_test)
    del teacher
    student = ctx.new_model()
    ctx.run_epochs(student, labels, lambda m, xb, pb: soft_cross_entropy(m(xb), pb, temperature),
                   ctx.config.epochs, "student")
    return student, {"teacher_test_accuracy": teacher_accuracy}

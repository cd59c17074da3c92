"""Hinton logit distillation with temperature, softmax (multi-class) and sigmoid (multi-label) forms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

__all__ = ["KDLoss"]


class KDLoss(_Loss):
    """``tau^2 * KL(p_T || p_S)`` with ``p = softmax(z / tau)``, averaged over the batch.

    With ``multi_label=True`` each class is an independent Bernoulli: ``p = sigmoid(z / tau)`` and the
    binary KL ``p_T log(p_T/p_S) + (1-p_T) log((1-p_T)/(1-p_S))`` is summed over classes, then averaged
    over the batch.

    Args:
        temperature: ``tau`` (> 0).
        multi_label: sigmoid instead of softmax.

    Shapes: ``student_logits``, ``teacher_logits`` ``[B, C]`` -> scalar.
    """

    def __init__(self, temperature: float = 4.0, multi_label: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.temperature = float(temperature)
        self.multi_label = multi_label

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f"KDLoss needs logits of one shape, got student {tuple(student_logits.shape)} "
                f"and teacher {tuple(teacher_logits.shape)}."
            )
        tau = self.temperature
        zs, zt = student_logits.float() / tau, teacher_logits.float() / tau
        if self.multi_label:
            # log-sigmoid forms keep the binary KL finite for saturated logits
            log_ps, log_1ps = F.logsigmoid(zs), F.logsigmoid(-zs)
            log_pt, log_1pt = F.logsigmoid(zt), F.logsigmoid(-zt)
            kl = log_pt.exp() * (log_pt - log_ps) + log_1pt.exp() * (log_1pt - log_1ps)
            return kl.sum(dim=1).mean() * tau**2
        kl = F.kl_div(F.log_softmax(zs, dim=1), F.log_softmax(zt, dim=1), reduction="batchmean", log_target=True)
        return kl * tau**2

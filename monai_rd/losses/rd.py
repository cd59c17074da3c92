"""The Reprogramming Distillation loss: two supervised terms, logit KD and CKA feature distillation."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.losses.cka import gather_across_ranks, linear_cka
from monai_rd.losses.kd import KDLoss

__all__ = ["RDLoss", "RD_TERMS", "rd_default_weights", "supervised_loss"]

RD_TERMS = ("ce_teacher", "ce_student", "kd", "cka")


def supervised_loss(logits: torch.Tensor, target: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """CE on class indices ``[B]``/``[B, 1]``, or BCE-with-logits on multi-hot ``[B, C]`` targets (the
    supervised term of RD and of every comparison method)."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits.float(), target.float().view_as(logits))
    return F.cross_entropy(logits.float(), target.long().view(-1))


def rd_default_weights() -> dict:
    """The paper's loss-weight schedule, the one default of the package: ``a = b = 1`` constant, ``c`` (KD)
    and ``l`` (CKA) from 1 falling linearly to 0 (``LossWeightSchedule`` arguments; a fresh copy per call)."""
    linear_decay = {"start": 1.0, "end": 0.0, "schedule": "linear"}
    return {"ce_teacher": 1.0, "ce_student": 1.0, "kd": dict(linear_decay), "cka": dict(linear_decay)}


class RDLoss(nn.Module):
    """``L = a CE(z_T, y) + b CE(z_S, y) + c KD(z_S, z_T) + l (1 - CKA(f_T, f_S))``.

    The weights live in ``self.weights`` (keys ``ce_teacher``, ``ce_student``, ``kd``, ``cka``) so that a
    schedule handler can change them between iterations. A term whose weight is 0 is still computed and
    reported (it is cheap and keeps the logged curves continuous) but adds nothing to the total.

    Args:
        ce_teacher, ce_student, kd, cka: initial weights ``a, b, c, l``.
        temperature: ``tau`` of the KD term.
        multi_label: BCE-with-logits and sigmoid KD instead of CE and softmax KD (ChestX-ray14).
        detach_teacher: stop KD and CKA gradients from flowing into the teacher branch (``g`` and ``h``
            through ``z_T``); by default RD co-trains both branches end to end.
        gather_distributed: under DDP, compute CKA on the features of the whole global batch (all ranks),
            so the loss equals the single-process loss at the same global batch.

    Inputs:
        outputs: ``{"f_T": [B, d], "f_S": [B, d], "z_T": [B, C], "z_S": [B, C]}`` (from :class:`RDNet`).
        target: class indices ``[B]`` or ``[B, 1]``; for multi-label, ``{0, 1}`` ``[B, C]``.

    Returns:
        ``{"loss": total, "ce_teacher", "ce_student", "kd", "cka": the unweighted terms, "cka_value": CKA}``.
    """

    def __init__(
        self,
        ce_teacher: float = 1.0,
        ce_student: float = 1.0,
        kd: float = 1.0,
        cka: float = 1.0,
        temperature: float = 4.0,
        multi_label: bool = False,
        detach_teacher: bool = False,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.weights: dict[str, float] = {"ce_teacher": ce_teacher, "ce_student": ce_student, "kd": kd, "cka": cka}
        self.multi_label = multi_label
        self.detach_teacher = detach_teacher
        self.gather_distributed = gather_distributed
        self.kd_loss = KDLoss(temperature=temperature, multi_label=multi_label)

    def supervised(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CE on class indices, or BCE-with-logits on multi-hot targets (:func:`supervised_loss`)."""
        return supervised_loss(logits, target, self.multi_label)

    def forward(self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        z_t, z_s, f_t, f_s = outputs["z_T"], outputs["z_S"], outputs["f_T"], outputs["f_S"]
        z_t_kd, f_t_kd = (z_t.detach(), f_t.detach()) if self.detach_teacher else (z_t, f_t)
        if self.gather_distributed:
            f_t_kd, f_s = gather_across_ranks(f_t_kd), gather_across_ranks(f_s)
        cka_value = linear_cka(f_t_kd, f_s)
        terms = {
            "ce_teacher": self.supervised(z_t, target),
            "ce_student": self.supervised(z_s, target),
            "kd": self.kd_loss(z_s, z_t_kd),
            "cka": 1.0 - cka_value,
        }
        total = sum(self.weights[name] * value for name, value in terms.items())
        return {"loss": total, **terms, "cka_value": cka_value}

"""The Reprogramming Distillation loss: two supervised terms, logit KD and CKA feature distillation."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.losses.cka import gather_across_ranks, linear_cka
from monai_rd.losses.kd import KDLoss

__all__ = [
    "RDLoss",
    "RD_TERMS",
    "RD_SCHEDULES",
    "DEFAULT_RD_SCHEDULE",
    "rd_schedule",
    "rd_default_weights",
    "supervised_loss",
]

RD_TERMS = ("ce_teacher", "ce_student", "kd", "cka")

#: Named loss-weight schedules of RD (term -> weight spec). ``paper``: the paper's "initially 1 and decrease
#: linearly" for KD and CKA from the first step. ``warmup``: the two supervised terms alone for the first
#: fifth of training (so ``g`` and the shared head learn the task before the branches are pulled together),
#: then KD and CKA start at 1 and fall linearly to 0 over the rest; measured in docs/methods.md
#: (``benchmarks/rd_dynamics.py``).
RD_SCHEDULES: dict[str, dict[str, float | dict]] = {
    "paper": {
        "ce_teacher": 1.0,
        "ce_student": 1.0,
        "kd": {"start": 1.0, "end": 0.0, "schedule": "linear"},
        "cka": {"start": 1.0, "end": 0.0, "schedule": "linear"},
    },
    "warmup": {
        "ce_teacher": 1.0,
        "ce_student": 1.0,
        "kd": {"start": 1.0, "end": 0.0, "schedule": "linear", "warmup": 0.2},
        "cka": {"start": 1.0, "end": 0.0, "schedule": "linear", "warmup": 0.2},
    },
}
DEFAULT_RD_SCHEDULE = "paper"


def rd_schedule(name: str, overrides: Mapping | None = None) -> dict[str, float | dict]:
    """A copy of the named RD loss-weight schedule with ``overrides`` replacing the terms they name (the bundles'
    ``loss_weights`` id: ``--loss_weights "{'cka': 0}"`` fixes CKA at 0 and leaves the other terms on the schedule).

    Args:
        name: a key of :data:`RD_SCHEDULES`.
        overrides: term (one of :data:`RD_TERMS`) -> a number or a ``WeightSchedule`` mapping.
    """
    if name not in RD_SCHEDULES:
        raise ValueError(f"Unknown RD loss schedule {name!r}; choose one of {sorted(RD_SCHEDULES)}.")
    weights = {k: dict(v) if isinstance(v, Mapping) else v for k, v in RD_SCHEDULES[name].items()}
    unknown = sorted(set(overrides or {}) - set(RD_TERMS))
    if unknown:
        raise ValueError(f"loss_weights names {unknown}, which are not RD loss terms; RD's terms are {list(RD_TERMS)}.")
    weights.update({k: dict(v) if isinstance(v, Mapping) else v for k, v in (overrides or {}).items()})
    return weights


def rd_default_weights() -> dict[str, float | dict]:
    """The package's default RD loss-weight schedule (:data:`DEFAULT_RD_SCHEDULE`), a fresh copy per call."""
    return rd_schedule(DEFAULT_RD_SCHEDULE)


def supervised_loss(logits: torch.Tensor, target: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """CE on class indices ``[B]``/``[B, 1]``, or BCE-with-logits on multi-hot ``[B, C]`` targets (the
    supervised term of RD and of every comparison method)."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits.float(), target.float().view_as(logits))
    return F.cross_entropy(logits.float(), target.long().view(-1))


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
        cka_memory: number of recent samples whose features (detached) join the current batch in the CKA
            term while training (a FIFO of the last ``cka_memory`` samples; 0 = the batch alone). CKA is a
            statistic of a set of samples: at batch 8 it is noisy and easy to satisfy, a memory of recent
            batches makes it a statement about the data. Gradients flow through the current batch only.

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
        cka_memory: int = 0,
    ) -> None:
        super().__init__()
        self.weights: dict[str, float] = {"ce_teacher": ce_teacher, "ce_student": ce_student, "kd": kd, "cka": cka}
        self.multi_label = multi_label
        self.detach_teacher = detach_teacher
        self.gather_distributed = gather_distributed
        self.kd_loss = KDLoss(temperature=temperature, multi_label=multi_label)
        if cka_memory < 0:
            raise ValueError(f"cka_memory is a number of samples >= 0, got {cka_memory}.")
        self.cka_memory = int(cka_memory)
        self._memory: tuple[torch.Tensor, torch.Tensor] | None = None  # (f_T, f_S) of recent samples

    def cka_with_memory(self, f_t: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
        """Linear CKA of the current features ``[B, d_T]``, ``[B, d_S]`` joined by the remembered ones.

        Without a memory (``cka_memory=0`` or nothing remembered yet) this is ``linear_cka(f_t, f_s)``.
        When gradients are enabled the current batch (detached) is then pushed into the memory.
        """
        memory = self._memory
        if memory is not None and memory[0].shape[1:] == f_t.shape[1:] and memory[1].shape[1:] == f_s.shape[1:]:
            value = linear_cka(torch.cat([f_t, memory[0].to(f_t)]), torch.cat([f_s, memory[1].to(f_s)]))
        else:
            value = linear_cka(f_t, f_s)
        if self.cka_memory and torch.is_grad_enabled():
            new_t, new_s = f_t.detach(), f_s.detach()
            if memory is not None and memory[0].shape[1:] == new_t.shape[1:]:
                new_t, new_s = torch.cat([new_t, memory[0]]), torch.cat([new_s, memory[1]])
            self._memory = (new_t[: self.cka_memory], new_s[: self.cka_memory])
        return value

    def memory_state(self) -> dict[str, torch.Tensor]:
        """The CKA memory as tensors (``{"f_T": [M, d_T], "f_S": [M, d_S]}``, empty before the first step), for a
        resume checkpoint: a resumed run then computes the same CKA as an uninterrupted one."""
        return {} if self._memory is None else {"f_T": self._memory[0], "f_S": self._memory[1]}

    def load_memory_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore what :meth:`memory_state` returned."""
        self._memory = (state["f_T"], state["f_S"]) if state else None

    def supervised(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CE on class indices, or BCE-with-logits on multi-hot targets (:func:`supervised_loss`)."""
        return supervised_loss(logits, target, self.multi_label)

    def forward(self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        z_t, z_s, f_t, f_s = outputs["z_T"], outputs["z_S"], outputs["f_T"], outputs["f_S"]
        z_t_kd, f_t_kd = (z_t.detach(), f_t.detach()) if self.detach_teacher else (z_t, f_t)
        if self.gather_distributed:
            f_t_kd, f_s = gather_across_ranks(f_t_kd), gather_across_ranks(f_s)
        cka_value = self.cka_with_memory(f_t_kd, f_s)
        terms = {
            "ce_teacher": self.supervised(z_t, target),
            "ce_student": self.supervised(z_s, target),
            "kd": self.kd_loss(z_s, z_t_kd),
            "cka": 1.0 - cka_value,
        }
        total = sum(self.weights[name] * value for name, value in terms.items())
        return {"loss": total, **terms, "cka_value": cka_value}

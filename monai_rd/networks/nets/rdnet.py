"""RDNet: frozen teacher ``T``, reprogrammer ``g``, student ``S`` and one shared head ``h``."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.networks.blocks.reprogrammer import Reprogrammer, budget_width
from monai_rd.networks.nets.students import StudentClassifier
from monai_rd.networks.nets.teachers import FrozenTeacher

__all__ = ["RDNet", "RDTeacherBranch", "REPROGRAMMER_BUDGET"]

# default cap on g's parameters, as a fraction of the student's: measured in README "Speed" (RD epoch within a few
# per cent of a student-only epoch, accuracy on benchmarks/modality_gap.py unchanged within seed noise)
REPROGRAMMER_BUDGET = 0.25


def _reprogrammed(
    teacher: nn.Module | None, reprogrammer: nn.Module, x: torch.Tensor, teacher_features: torch.Tensor | None
) -> torch.Tensor:
    """``f_T = g(T(x))`` ``[B, d_S]``, RD's teacher branch up to the head; ``T`` is skipped when ``teacher_features``
    (a feature cache) are given."""
    if teacher_features is None:
        if teacher is None:
            raise ValueError("RDNet was built without a teacher: pass teacher_features.")
        teacher_features = teacher(x)
    return reprogrammer(teacher_features.float())


class RDNet(nn.Module):
    """The two branches of Reprogramming Distillation.

    ``f_T = g(T(x)), z_T = h(f_T)`` and ``f_S = S(x), z_S = h(f_S)``, with ``h`` the student's head,
    shared by both branches. Only ``g``, ``S`` and ``h`` are trainable.

    Args:
        teacher: the frozen teacher (or ``None`` when teacher features are supplied, e.g. from a cache).
        student: the deployable student (backbone + head).
        num_blocks: residual blocks in ``g``.
        teacher_feature_shape: teacher output shape without batch; required only when ``teacher`` is None.
        reprogrammer_width: bottleneck width of ``g`` (see :class:`Reprogrammer`); overrides the budget.
        reprogrammer_budget: when no width is given, ``g`` holds at most this fraction of the student's parameters
            (:func:`bottleneck_width`; full width when it fits); ``None`` = the paper's full-width ``g``.
        teacher_trains_head: whether the teacher branch's losses also train the shared head ``h`` (the paper's
            co-training). ``False``: ``z_T`` uses ``h``'s current weights without passing gradients to them, so
            ``h`` learns from the student's terms alone and ``g`` learns to map the teacher's features into the
            space that ``h`` classifies; a teacher branch that fits worse than the student then cannot pull the
            student's classifier towards its own features (measured in docs/methods.md).

    Shapes:
        ``forward(x)`` with ``x`` ``[B, 3, H, W]`` returns ``{"f_T": [B, d_S], "f_S": [B, d_S],
        "z_T": [B, C], "z_S": [B, C]}``. ``forward(x, teacher_features=t)`` skips ``T`` and uses ``t``.
    """

    def __init__(
        self,
        teacher: FrozenTeacher | None,
        student: StudentClassifier,
        num_blocks: int = 2,
        teacher_feature_shape: tuple[int, ...] | None = None,
        reprogrammer_width: int | None = None,
        reprogrammer_budget: float | None = REPROGRAMMER_BUDGET,
        teacher_trains_head: bool = True,
    ) -> None:
        super().__init__()
        self.teacher_trains_head = bool(teacher_trains_head)
        if teacher is None and teacher_feature_shape is None:
            raise ValueError("RDNet needs a teacher or the shape of its features (teacher_feature_shape).")
        self.teacher = teacher
        self.student = student
        shape = teacher.feature_shape if teacher is not None else tuple(teacher_feature_shape)  # type: ignore[arg-type]
        width = reprogrammer_width
        if width is None:
            width = budget_width(shape, student, reprogrammer_budget, num_blocks=num_blocks)
        self.reprogrammer = Reprogrammer(shape, student.feature_dim, num_blocks=num_blocks, width=width)

    @property
    def head(self) -> nn.Linear:
        """``h``, the classifier shared by both branches."""
        return self.student.head

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        f_t = _reprogrammed(self.teacher, self.reprogrammer, x, teacher_features)
        f_s = self.student.features(x)
        return {"f_T": f_t, "f_S": f_s, "z_T": self.teacher_logits(f_t), "z_S": self.head(f_s)}

    def teacher_logits(self, f_t: torch.Tensor) -> torch.Tensor:
        """``z_T = h(f_T)`` ``[B, C]``; through detached weights of ``h`` when ``teacher_trains_head`` is False."""
        if self.teacher_trains_head:
            return self.head(f_t)
        bias = self.head.bias.detach() if self.head.bias is not None else None
        return F.linear(f_t, self.head.weight.detach(), bias)

    def teacher_branch(self) -> RDTeacherBranch:
        """``h(g(T(x)))`` as a classifier of its own, sharing ``g`` and ``h`` with this RDNet (its warm-up stage)."""
        return RDTeacherBranch(self)

    def deployable(self) -> StudentClassifier:
        """The student and the shared head alone: images ``[B, 3, H, W]`` -> logits ``[B, C]``.

        It shares parameters with this RDNet, so it always holds the current weights.
        """
        return self.student


class RDTeacherBranch(nn.Module):
    """RD's teacher branch ``h(g(T(x)))`` as a classifier: the teacher-branch warm-up trains it alone, with CE,
    before co-training, so that KD and CKA start from a reprogrammed teacher that already fits the task.

    It holds the RDNet's own ``T``, ``g`` and ``h`` (no copies): what the warm-up learns is what co-training starts
    from. It has the interface of :class:`monai_rd.networks.TeacherClassifier` (``features``, ``head``), so the
    bundles' stage-1 machinery (validation, early stop, best weights, DDP) trains it unchanged.

    Shapes: ``features``: ``[B, 3, H, W]`` (or cached teacher features) -> ``[B, d_S]``; ``forward``: -> ``[B, C]``.
    """

    def __init__(self, rdnet: RDNet) -> None:
        super().__init__()
        self.encoder = rdnet.teacher
        self.reprogrammer = rdnet.reprogrammer
        self.head = rdnet.head

    def features(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> torch.Tensor:
        return _reprogrammed(self.encoder, self.reprogrammer, x, teacher_features)

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, teacher_features))

"""Networks of the comparison methods: each returns the dict the RD engines read (``z_S``, ``f_S``, ``z_T``, ``f_T``).

:class:`monai_rd.engines.RDTrainer` and :class:`monai_rd.engines.RDEvaluator` train and score any network whose
``forward(x, teacher_features=None)`` returns ``{"z_S": [B, C], "f_S": [B, d_S], "z_T": [B, C], "f_T": [B, d_T]}``
(``pred`` = ``z_S``, the model that is scored and saved) and which has ``deployable()``. The networks here add
the teacher-side classifiers (linear probe, reprogrammer + head, fine-tuned/LoRA/prompted teacher) and the
distillation network of the feature-distillation baselines.

The layer taps those baselines use live in :mod:`monai_rd.networks.layer_taps`, the teacher classifiers in
:mod:`monai_rd.networks.nets.teacher_classifiers`; their names stay importable from here.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

# the layer taps and the teacher classifiers live in modules of their own; their names stay importable from here
from monai_rd.networks import layer_taps as _taps
from monai_rd.networks.layer_taps import LayerTaps
from monai_rd.networks.nets.students import StudentClassifier
from monai_rd.networks.nets.teacher_classifiers import TeacherClassifier, pool_features

if TYPE_CHECKING:
    from monai_rd.networks.nets.rdnet import RDTeacherBranch

__all__ = [
    "pool_features",
    "TunedTeacher",
    "TeacherClassifier",
    "FrozenBranch",
    "ReferenceNet",
    "StudentNet",
    "DistillNet",
    "FoldedHeadStudent",
]
default_feature_layer, default_feature_layers = _taps.default_feature_layer, _taps.default_feature_layers
probe_forward, module_device, tap_layout, to_nchw = (
    _taps.probe_forward,
    _taps.module_device,
    _taps.tap_layout,
    _taps.to_nchw,
)


class TunedTeacher(nn.Module):
    """A trainable copy of a :class:`monai_rd.networks.FrozenTeacher` (the original stays untouched).

    It keeps the teacher's own preprocessing and runs with autograd. Which parameters train is set by the caller
    (all for fine-tuning, only LoRA matrices or prompts for PEFT).

    Args:
        teacher: the frozen teacher to copy.
        train_mode: put the backbone in training mode when the trainer does (fine-tuning: BatchNorm statistics
            and dropout follow training); ``False`` keeps it in eval mode (PEFT: the backbone's statistics stay).

    Shapes: ``[B, 3, H, W]`` in ``[0, 1]`` -> the teacher's features (``[B, D]`` or ``[B, D, h, w]``).
    """

    def __init__(self, teacher: nn.Module, train_mode: bool = True) -> None:
        super().__init__()
        if not any(True for _ in teacher.parameters()):
            raise ValueError(
                f"Teacher {getattr(teacher, 'name', type(teacher).__name__)!r} has no parameters (e.g. an ONNX "
                "black box), so it cannot be fine-tuned or adapted; use a method that keeps it frozen."
            )
        self.teacher = copy.deepcopy(teacher)
        for m in self.teacher.modules():  # feature taps of other methods on the shared teacher stay there
            m._forward_hooks.clear()
        self.name = getattr(teacher, "name", "")
        self.feature_shape = tuple(teacher.feature_shape)
        self.train_mode = train_mode

    def train(self, mode: bool = True) -> TunedTeacher:
        super().train(mode)  # FrozenTeacher.train keeps everything below in eval mode ...
        if self.train_mode and mode:
            nn.Module.train(self.teacher.backbone, True)  # ... except the backbone being fine-tuned
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher.backbone(self.teacher.preprocess(x))


class FrozenBranch(nn.Module):
    """Freezes a trained teacher branch for distillation: eval mode always, no autograd, no trainable parameters
    visible to the optimiser of the distillation stage (it is trained, if at all, by stage 1 directly)."""

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch

    def train(self, mode: bool = True) -> FrozenBranch:
        return super().train(False)

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, teacher_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(z_T [B, C], f_T [B, d])``."""
        f = self.branch.features(x, teacher_features)
        return self.branch.head(f), f


class ReferenceNet(nn.Module):
    """Trains a :class:`TeacherClassifier` alone (``teacher_linear``, ``teacher_finetune``, and every stage 1;
    RD's teacher-branch warm-up trains an :class:`~monai_rd.networks.RDTeacherBranch`, which has the same interface).

    Its prediction ``z_S`` is the teacher classifier's logits; ``z_T``/``f_T`` repeat ``z_S``/``f_S`` so the RD
    evaluator and its CKA monitor run unchanged (the reported CKA is then 1 by construction). ``deployable()``
    is the teacher classifier itself (teacher + head): that is what a reference method saves as ``model.pt``.
    """

    def __init__(self, classifier: TeacherClassifier | RDTeacherBranch) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        f = self.classifier.features(x, teacher_features)
        z = self.classifier.head(f)
        return {"z_S": z, "f_S": f, "z_T": z, "f_T": f}

    def deployable(self) -> TeacherClassifier:
        return self.classifier


class StudentNet(nn.Module):
    """The student alone (``student`` method). ``z_T``/``f_T`` repeat the student's (no teacher exists)."""

    def __init__(self, student: StudentClassifier) -> None:
        super().__init__()
        self.student = student

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        f = self.student.features(x)
        z = self.student.head(f)
        return {"z_S": z, "f_S": f, "z_T": z, "f_T": f}

    def deployable(self) -> StudentClassifier:
        return self.student


class FoldedHeadStudent(nn.Module):
    """A student whose last map passes through a feature transform before its head, deployed with it folded in.

    NORM's feature transform ``FT`` (:class:`monai_rd.networks.blocks.FeatureTransform`) acts on the student's last
    map during training and its output feeds the classifier: ``z = h(pool(FT(F_S)))``. In eval mode ``FT`` is one
    affine map per position (1x1 convolutions, BatchNorm with running statistics, a residual), and global average
    pooling commutes with it, so ``z = h(W pool(F_S) + b) = (W_h W) f_S + (W_h b + b_h)``: this module computes the
    eval-mode logits with that folded head, so what is saved is a plain :class:`StudentClassifier`:

    * :meth:`state_dict` gives the student's keys with the folded ``head.weight``/``head.bias``;
    * a copy (``copy.deepcopy``, as the report and registry handlers make) *is* that plain student;
    * :meth:`load_state_dict` of such a state loads the student and resets the transform to the identity.

    Args:
        student: the student; its ``head`` is ``nn.Linear(d_S, C)``.
        transform: has ``forward(map) -> (map, expanded)``, ``affine() -> (W, b)`` and ``reset_to_identity()``;
            owned (and trained) elsewhere, e.g. by the NORM loss.

    Shapes: ``x`` ``[B, C_in, H, W]`` -> logits ``[B, C]``; :meth:`logits_from_map`: ``[B, d_S, h, w]`` -> ``[B, C]``.
    """

    def __init__(self, student: StudentClassifier, transform: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.transform = transform

    def folded_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [C, d_S], b [C])`` of ``head(FT(f_S))`` in eval mode."""
        w, b = self.transform.affine()
        head = self.student.head
        return head.weight @ w, head.weight @ b + head.bias

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``f_S`` ``[B, d_S]`` -> ``[B, C]`` through the folded head (eval mode)."""
        return F.linear(features, *self.folded_head())

    def logits_from_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The student's last map ``[B, d_S, h, w]`` -> ``h(pool(FT(map)))`` ``[B, C]`` (training: batch statistics)."""
        out, _ = self.transform(feature_map)
        return self.student.head(out.flatten(2).mean(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.student.features(x))

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        state = self.student.state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        with torch.no_grad():
            w, b = self.folded_head()
        state[prefix + "head.weight"], state[prefix + "head.bias"] = w.detach().clone(), b.detach().clone()
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = self.student.load_state_dict(state_dict, strict=strict, assign=assign)
        self.transform.reset_to_identity()  # the loaded head is already folded
        return result

    def __deepcopy__(self, memo):
        plain = copy.deepcopy(self.student, memo)
        with torch.no_grad():
            w, b = self.folded_head()
            plain.head.weight.copy_(w)
            plain.head.bias.copy_(b)
        return plain


class DistillNet(nn.Module):
    """A student distilled from a teacher that does not change during distillation.

    Args:
        student: the deployable student.
        teacher: a frozen teacher (feature methods), or ``None`` when ``branch`` is given.
        branch: a teacher classifier trained in stage 1 (probe, ``g + h``, LoRA/VPT teacher + head); it is wrapped
            in :class:`FrozenBranch` here.
        teacher_layers, student_layers: layers whose outputs are returned as ``feat_T``/``feat_S`` lists (names
            relative to ``teacher``/``student``).
        head_transform: a transform of the student's last (tapped) map feeding its head during training (NORM's
            feature transform, owned by its loss); deployed folded into the head (:class:`FoldedHeadStudent`).

    Returns ``{"z_S", "f_S", "z_T", "f_T", "feat_S", "feat_T"}``: ``z_T`` is the branch's logits, or ``z_S`` again
    when the teacher has no head (feature methods; no loss reads it then); ``f_T`` the branch's features or the
    teacher's pooled output ``[B, D_T]``.
    """

    def __init__(
        self,
        student: StudentClassifier,
        teacher: nn.Module | None = None,
        branch: TeacherClassifier | None = None,
        teacher_layers: Sequence[str] = (),
        student_layers: Sequence[str] = (),
        head_transform: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if (teacher is None) == (branch is None):
            raise ValueError("DistillNet takes either a frozen teacher or a trained teacher branch.")
        self.student = student
        self.teacher = teacher
        self.branch = FrozenBranch(branch) if branch is not None else None
        if teacher_layers and teacher is None:
            raise ValueError("Intermediate teacher layers are tapped on a frozen teacher, not on a trained branch.")
        self.teacher_taps = LayerTaps(teacher, teacher_layers, "teacher") if teacher_layers else None  # type: ignore
        self.student_taps = LayerTaps(student, student_layers, "student") if student_layers else None
        self.set_head_transform(head_transform)

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if teacher_features is not None and self.teacher_taps is not None:
            raise ValueError("Feature distillation reads intermediate teacher layers; a feature cache cannot serve it.")
        f_s = self.student.features(x)
        feat_s = self.student_taps.pop() if self.student_taps is not None else None
        if not self._folded:
            z_s = self.student.head(f_s)
        elif self.training:  # the transform reads the whole map (BatchNorm's batch statistics)
            z_s = self._folded[0].logits_from_map(feat_s[-1])  # type: ignore[index]
        else:
            z_s = self._folded[0].logits(f_s)
        out: dict = {"z_S": z_s, "f_S": f_s}
        if self.branch is not None:
            out["z_T"], out["f_T"] = self.branch(x, teacher_features)
        else:
            with torch.no_grad():
                t = self.teacher(x) if teacher_features is None else teacher_features  # type: ignore[misc]
            out["z_T"], out["f_T"] = z_s, pool_features(t.float())
        if feat_s is not None:
            out["feat_S"] = feat_s
        if self.teacher_taps is not None:
            out["feat_T"] = [t.detach() for t in self.teacher_taps.pop()]
        return out

    def set_head_transform(self, transform: nn.Module | None) -> None:
        """Put ``transform`` (see ``head_transform``) between the student's last map and its head; None: no change.

        For a method whose transform is built from the taps' shapes, after this network exists (NORM)."""
        if transform is not None and self.student_taps is None:
            raise ValueError("A head transform reads the student's last map: tap it (student_layers).")
        # kept out of this module's children: its state dict is the folded student's, not a second copy of ours
        self._folded = (FoldedHeadStudent(self.student, transform),) if transform is not None else ()

    def deployable(self) -> nn.Module:
        """The student (a :class:`FoldedHeadStudent` with ``head_transform``: saved and copied as a plain student)."""
        return self._folded[0] if self._folded else self.student

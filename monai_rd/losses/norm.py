"""NORM: knowledge distillation via N-to-one representation matching (Liu et al., ICLR 2023)."""

from __future__ import annotations

import torch
import torch.nn as nn

from monai_rd.losses.feature_shapes import pool_to_common, to_map
from monai_rd.networks.blocks.feature_transform import FeatureTransform

__all__ = ["NORMLoss"]


class NORMLoss(nn.Module):
    """N-to-one matching of the expanded student feature to the (intact) teacher feature.

    The Feature Transform (FT, :class:`monai_rd.networks.blocks.FeatureTransform`) has ``expand`` ``E``:
    ``C_S -> N * C_T`` and ``contract`` ``C``: ``N * C_T -> C_S``. The expanded student feature is split sequentially
    into ``N`` non-overlapping segments of ``C_T`` channels; every segment is matched to the same teacher feature:

    ``L = sum_{n=1..N} mean_{b,c,h,w} (E(F_S)[:, (n-1) C_T : n C_T] - F_T)^2``

    which is ``N * MSE(E(F_S), tile(F_T, N))``, the reduction of the authors' code (OSVAI/NORM, ``helper/loops.py``:
    ``F.mse_loss(f_s, f_t.repeat(1, N, 1, 1)) * N``; default ``N = 4``). The authors max-pool the larger map; this
    module average-pools it like the other baselines (the expanded student map, or the teacher's). The FT's output ``C(E(F_S)) + F_S`` feeds the student's
    classifier during training (the method network calls :meth:`transform`); in eval mode it is affine and folds
    into the classifier.

    Args:
        student_channels: ``C_S``.
        teacher_channels: ``C_T``.
        num_segments: ``N`` (expansion rate).
        num_prefix_tokens: prefix tokens dropped when tokens are laid out as maps (None: auto).
        feature_transform: ``"conv_bn_residual"`` (the authors' default: ``conv1x1 + BN`` layers and a residual) or
            ``"plain"`` (two biased 1x1 convolutions, no residual: the paper's "two linear layers").

    Shapes: ``student`` ``[B, C_S, H, W]`` / ``[B, N, D]`` / ``[B, C_S]``, ``teacher`` likewise with ``C_T``
    (the larger map is average-pooled) -> scalar.
    """

    def __init__(
        self,
        student_channels: int,
        teacher_channels: int,
        num_segments: int = 4,
        num_prefix_tokens: int | None = None,
        feature_transform: str = "conv_bn_residual",
    ) -> None:
        super().__init__()
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}.")
        self.ft = FeatureTransform(student_channels, num_segments * teacher_channels, feature_transform)
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.num_segments = num_segments
        self.num_prefix_tokens = num_prefix_tokens

    @property
    def expand(self) -> nn.Module:
        return self.ft.expand

    @property
    def contract(self) -> nn.Module:
        return self.ft.contract

    def transform(self, student: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Student map ``[B, C_S, H, W]`` -> (FT output ``[B, C_S, H, W]``, expanded ``[B, N * C_T, H, W]``)."""
        return self.ft(student)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        s, t = to_map(student, "student", self.num_prefix_tokens), to_map(teacher, "teacher", self.num_prefix_tokens)
        if (s.shape[1], t.shape[1]) != (self.student_channels, self.teacher_channels):
            raise ValueError(
                f"{type(self).__name__} was built for {self.student_channels} -> {self.teacher_channels} channels, "
                f"got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}."
            )
        # E reads the student's whole map, as the classifier's pass does; the larger map is pooled afterwards. That
        # pass owns BatchNorm's running statistics: this second read of E leaves them as they are.
        e, t = pool_to_common(self.ft.expanded(s, update_stats=False), t)
        segments = e.view(e.shape[0], self.num_segments, self.teacher_channels, *e.shape[2:])
        return (segments - t[:, None]).pow(2).mean() * self.num_segments

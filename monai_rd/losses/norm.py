"""NORM: knowledge distillation via N-to-one representation matching (Liu et al., ICLR 2023)."""

from __future__ import annotations

import torch
import torch.nn as nn

from monai_rd.losses.feature_shapes import paired_maps

__all__ = ["NORMLoss"]


class NORMLoss(nn.Module):
    """N-to-one matching of the expanded student feature to the (intact) teacher feature.

    The Feature Transform (FT) module has two linear layers (1x1 convolutions on maps): ``expand``
    ``C_S -> N * C_T`` and ``contract`` ``N * C_T -> C_S``. The expanded student feature is split sequentially into
    ``N`` non-overlapping segments of ``C_T`` channels; every segment is matched to the same teacher feature:

    ``L = sum_{n=1..N} mean_{b,c,h,w} (E(F_S)[:, (n-1) C_T : n C_T] - F_T)^2``

    which is ``N * MSE(E(F_S), tile(F_T, N))``, the reduction of the authors' code (OSVAI/NORM, ``helper/loops.py``:
    ``F.mse_loss(f_s, f_t.repeat(1, N, 1, 1)) * N``; default ``N = 4``). The authors max-pool the larger map; this
    module average-pools it like the other baselines. ``contract`` returns the student
    feature to its own space: :meth:`transform` gives it, to be fed to the student's classifier during training
    (after training both layers fold into the classifier because they are linear).

    Args:
        student_channels: ``C_S``.
        teacher_channels: ``C_T``.
        num_segments: ``N`` (expansion rate).
        num_prefix_tokens: prefix tokens dropped when tokens are laid out as maps (None: auto).

    Shapes: ``student`` ``[B, C_S, H, W]`` / ``[B, N, D]`` / ``[B, C_S]``, ``teacher`` likewise with ``C_T``
    (the larger map is average-pooled) -> scalar.
    """

    def __init__(
        self, student_channels: int, teacher_channels: int, num_segments: int = 4, num_prefix_tokens: int | None = None
    ) -> None:
        super().__init__()
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}.")
        self.expand = nn.Conv2d(student_channels, num_segments * teacher_channels, 1)
        self.contract = nn.Conv2d(num_segments * teacher_channels, student_channels, 1)
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.num_segments = num_segments
        self.num_prefix_tokens = num_prefix_tokens

    def transform(self, student: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Student map ``[B, C_S, H, W]`` -> (contracted ``[B, C_S, H, W]``, expanded ``[B, N * C_T, H, W]``)."""
        e = self.expand(student)
        return self.contract(e), e

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        channels = (self.student_channels, self.teacher_channels)
        s, t = paired_maps(student, teacher, channels, self.num_prefix_tokens, type(self).__name__)
        e = self.expand(s)
        segments = e.view(e.shape[0], self.num_segments, self.teacher_channels, *e.shape[2:])
        return (segments - t[:, None]).pow(2).mean() * self.num_segments

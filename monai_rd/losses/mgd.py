"""Masked Generative Distillation (Yang et al., ECCV 2022)."""

from __future__ import annotations

import torch
import torch.nn as nn

from .feature_shapes import pool_to_common, to_map

__all__ = ["MGDLoss"]


class MGDLoss(nn.Module):
    """``alpha * sum_{c,h,w} (G(align(F_S) * M) - F_T)^2 / B``.

    ``align`` is a 1x1 convolution when widths differ (identity otherwise); ``M`` ``[B, 1, H, W]`` is a random
    spatial mask, 0 with probability ``mask_ratio`` (``lambda``) and 1 otherwise, drawn from a seeded generator
    (or given); ``G`` is the generation block ``conv3x3 -> ReLU -> conv3x3`` at the teacher width.
    Defaults are the authors' ImageNet classification settings (``alpha = 7e-5``, ``lambda = 0.15``).

    Args:
        student_channels: ``C_S``.
        teacher_channels: ``C_T``.
        alpha: loss weight.
        mask_ratio: probability that a position is masked.
        seed: seed of the mask generator.
        num_prefix_tokens: prefix tokens dropped when tokens are laid out as maps (None: auto).

    Shapes: ``student`` ``[B, C_S, H, W]`` / ``[B, N, D]``, ``teacher`` ``[B, C_T, H', W']`` (the larger is
    average-pooled), optional ``mask`` ``[B, 1, H, W]`` -> scalar. ``[B, D]`` vectors are refused.
    """

    def __init__(
        self,
        student_channels: int,
        teacher_channels: int,
        alpha: float = 7e-5,
        mask_ratio: float = 0.15,
        seed: int = 0,
        num_prefix_tokens: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}.")
        self.align = (
            nn.Conv2d(student_channels, teacher_channels, 1) if student_channels != teacher_channels else nn.Identity()
        )
        self.generation = nn.Sequential(
            nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1),
        )
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.alpha, self.mask_ratio = float(alpha), float(mask_ratio)
        self.num_prefix_tokens = num_prefix_tokens
        self._generator = torch.Generator().manual_seed(seed)

    def random_mask(self, batch: int, height: int, width: int) -> torch.Tensor:
        """``[B, 1, H, W]`` float mask: 0 where ``u > 1 - mask_ratio`` for ``u ~ U[0, 1)``, else 1."""
        u = torch.rand(batch, 1, height, width, generator=self._generator)
        return (u <= 1.0 - self.mask_ratio).float()

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if student.ndim == 2 or teacher.ndim == 2:
            raise ValueError(
                f"MGD masks spatial positions and needs [B, C, H, W] maps or [B, N, D] tokens, got student "
                f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}."
            )
        s, t = to_map(student, "student", self.num_prefix_tokens), to_map(teacher, "teacher", self.num_prefix_tokens)
        if s.shape[1] != self.student_channels or t.shape[1] != self.teacher_channels:
            raise ValueError(
                f"MGDLoss was built for {self.student_channels} -> {self.teacher_channels} channels, got student "
                f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}."
            )
        s, t = pool_to_common(s, t)
        b, _, h, w = t.shape
        if mask is None:
            mask = self.random_mask(b, h, w)
        if tuple(mask.shape) != (b, 1, h, w):
            raise ValueError(f"MGD mask must be [B, 1, H, W] = {(b, 1, h, w)}, got {tuple(mask.shape)}.")
        gen = self.generation(self.align(s) * mask.to(s))
        return self.alpha * (gen - t).pow(2).sum() / b

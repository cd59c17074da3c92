"""Masked Generative Distillation (Yang et al., ECCV 2022)."""

from __future__ import annotations

import torch
import torch.nn as nn

from monai_rd.losses.feature_shapes import paired_maps

__all__ = ["MGDLoss"]


class MGDLoss(nn.Module):
    """``alpha * sum_{c,h,w} (G(align(F_S) * M) - F_T)^2 / B``.

    ``align`` is a 1x1 convolution when widths differ (identity otherwise); ``M`` is a random mask, 0 with
    probability ``mask_ratio`` (``lambda``) and 1 otherwise, drawn from a seeded generator (or given): spatial
    ``[B, 1, H, W]`` (``mask_mode="spatial"``, the paper's eq. 1) or per channel ``[B, C_T, 1, 1]``
    (``mask_mode="channel"``, what the authors' ImageNet classification code, yzd-v/MGD ``cls/``, uses);
    ``G`` is the generation block ``conv3x3 -> ReLU -> conv3x3`` at the teacher width.
    ``alpha = 7e-5`` and ``lambda = 0.15`` are the authors' ImageNet classification settings.

    Args:
        student_channels: ``C_S``.
        teacher_channels: ``C_T``.
        alpha: loss weight.
        mask_ratio: probability that a position (or channel) is masked.
        mask_mode: ``"channel"`` (default: the authors' classification code masks whole channels, ``u < lambda``
            per sample and channel) or ``"spatial"`` (the paper's eq. 1, their detection/segmentation setting).
        seed: seed of the mask generator.
        num_prefix_tokens: prefix tokens dropped when tokens are laid out as maps (None: auto).

    Shapes: ``student`` ``[B, C_S, H, W]`` / ``[B, N, D]``, ``teacher`` ``[B, C_T, H', W']`` (the larger is
    average-pooled), optional ``mask`` ``[B, 1, H, W]`` / ``[B, C_T, 1, 1]`` -> scalar. ``[B, D]`` vectors are
    refused.
    """

    def __init__(
        self,
        student_channels: int,
        teacher_channels: int,
        alpha: float = 7e-5,
        mask_ratio: float = 0.15,
        mask_mode: str = "channel",
        seed: int = 0,
        num_prefix_tokens: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}.")
        if mask_mode not in ("spatial", "channel"):
            raise ValueError(f"mask_mode must be 'spatial' or 'channel', got {mask_mode!r}.")
        self.mask_mode = mask_mode
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

    def mask_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``(B, 1, H, W)`` for spatial masks, ``(B, C_T, 1, 1)`` for channel masks."""
        if self.mask_mode == "channel":
            return (batch, self.teacher_channels, 1, 1)
        return (batch, 1, height, width)

    def random_mask(self, batch: int, height: int, width: int) -> torch.Tensor:
        """Float mask of :meth:`mask_shape`: 0 where ``u > 1 - mask_ratio`` for ``u ~ U[0, 1)``, else 1."""
        u = torch.rand(self.mask_shape(batch, height, width), generator=self._generator)
        return (u <= 1.0 - self.mask_ratio).float()

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if student.ndim == 2 or teacher.ndim == 2:
            raise ValueError(
                f"MGD masks spatial positions and needs [B, C, H, W] maps or [B, N, D] tokens, got student "
                f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}."
            )
        channels = (self.student_channels, self.teacher_channels)
        s, t = paired_maps(student, teacher, channels, self.num_prefix_tokens, type(self).__name__)
        b, _, h, w = t.shape
        if mask is None:
            mask = self.random_mask(b, h, w)
        if tuple(mask.shape) != self.mask_shape(b, h, w):
            raise ValueError(f"MGD {self.mask_mode} mask must be {self.mask_shape(b, h, w)}, got {tuple(mask.shape)}.")
        gen = self.generation(self.align(s) * mask.to(s))
        return self.alpha * (gen - t).pow(2).sum() / b

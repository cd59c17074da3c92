"""Teachers with a classification head, one home for both kinds: :class:`TeacherClassifier` (a 2D teacher,
``head(g(T(x)))`` or a linear probe on pooled features; what the teacher-side methods train and stage 1 keeps)
and :class:`VolumeTeacherClassifier` (a volume teacher with a linear head; what the deployment cost compares a
3D student with).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_rd.networks.blocks.reprogrammer import Reprogrammer

__all__ = ["pool_features", "TeacherClassifier", "VolumeTeacherClassifier"]


def pool_features(t: torch.Tensor) -> torch.Tensor:
    """Teacher output -> a vector per sample: ``[B, D]`` as is, ``[B, D, h, w]`` averaged over space."""
    if t.ndim == 2:
        return t
    if t.ndim == 4:
        return t.float().mean(dim=(2, 3))
    raise ValueError(f"Teacher features must be [B, D] or [B, D, h, w], got shape {tuple(t.shape)}.")


class TeacherClassifier(nn.Module):
    """A classifier on teacher features: ``head(g(T(x)))`` (``g`` a :class:`Reprogrammer`) or ``head(pool(T(x)))``.

    Args:
        encoder: the teacher (frozen or :class:`TunedTeacher`), or ``None`` when features always come from a
            cache (``teacher_features``).
        num_classes: ``C``.
        feature_shape: per-sample teacher feature shape; default ``encoder.feature_shape``.
        reprogrammer_dim: if given, ``g`` maps teacher features to this width (direct reprogramming);
            otherwise the head is a linear probe on pooled teacher features.
        reprogrammer_blocks: residual blocks of ``g``.
        reprogrammer_width: bottleneck width of ``g`` (:class:`Reprogrammer`); ``None``: full width.

    Shapes: ``features``: ``[B, 3, H, W]`` -> ``[B, d]``; ``forward``: -> logits ``[B, C]``.
    """

    def __init__(
        self,
        encoder: nn.Module | None,
        num_classes: int,
        feature_shape: Sequence[int] | None = None,
        reprogrammer_dim: int | None = None,
        reprogrammer_blocks: int = 2,
        reprogrammer_width: int | None = None,
    ) -> None:
        super().__init__()
        if encoder is None and feature_shape is None:
            raise ValueError("TeacherClassifier needs a teacher or the shape of its cached features.")
        self.encoder = encoder
        shape = tuple(feature_shape) if feature_shape is not None else tuple(encoder.feature_shape)  # type: ignore
        self.feature_shape = shape
        if reprogrammer_dim is not None:
            self.reprogrammer: nn.Module | None = Reprogrammer(
                shape, reprogrammer_dim, num_blocks=reprogrammer_blocks, width=reprogrammer_width
            )
            width = reprogrammer_dim
        else:
            self.reprogrammer = None
            width = shape[0]
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> torch.Tensor:
        if teacher_features is None:
            if self.encoder is None:
                raise ValueError("This teacher classifier was built without a teacher: pass teacher_features.")
            teacher_features = self.encoder(x)
        t = teacher_features.float()
        return self.reprogrammer(t) if self.reprogrammer is not None else pool_features(t)

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, teacher_features))


class VolumeTeacherClassifier(nn.Module):
    """A volume teacher (3D encoder or slice-wise 2D teacher) with a linear head: ``[B, C_in, D, H, W] -> [B, C]``."""

    spatial_dims = 3

    def __init__(self, teacher: nn.Module, num_classes: int, in_channels: int = 1) -> None:
        super().__init__()
        self.teacher = teacher
        self.head = nn.Linear(int(torch.tensor(teacher.feature_shape).prod()), num_classes)
        self.register_buffer("mean", torch.zeros(1, in_channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.teacher(x).flatten(1))

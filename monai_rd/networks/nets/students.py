"""Student backbones by name, and the deployable student classifier (backbone + shared head)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_rd.networks.nets.backbones import FeatureBackbone, torchvision_backbone
from monai_rd.networks.weights import IMAGENET, imagenet_arch, resolve_weights
from monai_rd.utils.registry import Registry

__all__ = ["STUDENTS", "build_student", "StudentClassifier", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

STUDENTS = Registry("student")


STUDENTS.register_family("torchvision", torchvision_backbone)


# the paper's students, under their short names
for _arch in ("resnet18", "resnet34", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0"):
    STUDENTS.register(_arch, lambda _a=_arch, **kw: torchvision_backbone(_a, **kw))


def build_student(name: str, weights: str | os.PathLike | None = None, **options) -> FeatureBackbone:
    """Build the student backbone registered as ``name`` (``resnet18``, ``torchvision:<arch>`` ...).

    Args:
        weights: ``None``/``"none"`` (random initialisation, the bundles' default), ``"imagenet"`` (torchvision's
            weights enum, through its hub cache), a local file, or ``hf-hub:<org>/<repo>/<file>[@rev]``.

    Returns:
        a :class:`FeatureBackbone` mapping ``[B, 3, H, W]`` images to ``[B, feature_dim]`` features.
    """
    record = resolve_weights(name, weights, allow_none=True)
    arg = record.path
    if record.source == IMAGENET and imagenet_arch(name)[0] == "torchvision":
        arg = IMAGENET  # torchvision's own enum loads its file from the hub cache
    backbone = STUDENTS.build(name, weights=arg, **options)
    backbone.weights_record = record
    return backbone


class StudentClassifier(nn.Module):
    """The deployable model: ``h(S(normalise(x)))``.

    Args:
        backbone: a student name for :func:`build_student`, or a :class:`FeatureBackbone`.
        num_classes: ``C``, the width of the shared head ``h``.
        weights: optional local weights file for the backbone (when built by name).
        mean, std: per-channel normalisation applied inside the model, so a deployed student takes the
            same ``[0, 1]`` images the data pipeline produces.

    Shapes:
        ``forward``: ``[B, 3, H, W]`` in ``[0, 1]`` -> logits ``[B, C]``; ``features``: -> ``[B, d_S]``.
    """

    def __init__(
        self,
        backbone: str | FeatureBackbone,
        num_classes: int,
        weights: str | os.PathLike | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.backbone = build_student(backbone, weights=weights) if isinstance(backbone, str) else backbone
        if len(self.backbone.feature_shape) != 1:
            raise ValueError(f"A student must return pooled features [B, d]; got {self.backbone.feature_shape}.")
        self.feature_dim = self.backbone.feature_dim
        self.num_classes = num_classes
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``f_S``: ``[B, 3, H, W]`` -> ``[B, d_S]``."""
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

"""Student backbones by name, and the deployable student classifier (backbone + shared head)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_rd.networks.nets.backbones import FeatureBackbone, monai_backbone, torchvision_backbone
from monai_rd.networks.weights import IMAGENET, imagenet_arch, resolve_weights
from monai_rd.utils.registry import Registry

__all__ = ["STUDENTS", "build_student", "StudentClassifier", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

STUDENTS = Registry("student")


STUDENTS.register_family("torchvision", torchvision_backbone)
#: ``monai:<Net>``: any MONAI network, 2D or 3D (``spatial_dims=3``): ``monai:DenseNet121``, ``monai:resnet10``,
#: ``monai:resnet18``, ``monai:EfficientNetBN`` ...
STUDENTS.register_family("monai", monai_backbone)


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
            same ``[0, 1]`` images the data pipeline produces. Default: ImageNet's for 2D; for volumes
            (``spatial_dims=3``) none (0 and 1: the CT volume preset already windows intensities to ``[0, 1]``).
        spatial_dims: 2 (images) or 3 (volumes; the backbone is built with ``spatial_dims=3``, e.g. ``monai:resnet18``).
        in_channels: input channels when built by name for volumes (1 for CT/MRI).
        init_seed: when set, the backbone and head are initialised from torch's generator seeded with it, and the
            global generator is left as it was. The student then starts from the same weights whatever the run
            built before it (a teacher, ``g``), so methods compared at one seed start from one student (the bundles
            pass their ``seed``). With ``init_seed=seed`` right after ``set_determinism(seed)`` the weights are the
            ones an unseeded build would draw.

    Shapes:
        ``forward``: ``[B, C_in, H, W]`` (or ``[B, C_in, D, H, W]``) in ``[0, 1]`` -> logits ``[B, C]``;
        ``features``: -> ``[B, d_S]``.
    """

    def __init__(
        self,
        backbone: str | FeatureBackbone,
        num_classes: int,
        weights: str | os.PathLike | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        spatial_dims: int = 2,
        in_channels: int | None = None,
        init_seed: int | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        with torch.random.fork_rng(devices=[], enabled=init_seed is not None):
            if init_seed is not None:
                torch.manual_seed(int(init_seed))
            self._build(backbone, num_classes, weights, spatial_dims, in_channels)
        if mean is None or std is None:
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if spatial_dims == 2 else ((0.0,), (1.0,))
        self.spatial_dims = spatial_dims
        shape = (1, -1) + (1,) * spatial_dims
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def _build(self, backbone, num_classes: int, weights, spatial_dims: int, in_channels: int | None) -> None:
        if isinstance(backbone, str):
            options = {} if spatial_dims == 2 else {"spatial_dims": 3, "in_channels": in_channels or 1}
            if spatial_dims == 3 and not backbone.startswith("monai:"):
                raise ValueError(
                    f"3D students are MONAI networks (monai:<Net>, e.g. monai:resnet18); got {backbone!r}."
                )
            self.backbone = build_student(backbone, weights=weights, **options)
        else:
            self.backbone = backbone
        if len(self.backbone.feature_shape) != 1:
            raise ValueError(f"A student must return pooled features [B, d]; got {self.backbone.feature_shape}.")
        self.feature_dim = self.backbone.feature_dim
        self.num_classes = num_classes
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``f_S``: ``[B, C_in, H, W]`` (or ``[B, C_in, D, H, W]``) -> ``[B, d_S]``."""
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

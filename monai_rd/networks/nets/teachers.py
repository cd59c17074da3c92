"""Frozen teachers: a foundation-model backbone as a black box with its own preprocessing."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.networks.nets.backbones import FeatureBackbone, torchvision_backbone
from monai_rd.utils.registry import Registry
from monai_rd.networks.nets.students import IMAGENET_MEAN, IMAGENET_STD
from monai_rd.networks.weights import IMAGENET, RANDOM, RandomTeacherWarning, imagenet_arch, resolve_weights

__all__ = ["TEACHERS", "FrozenTeacher", "build_teacher"]

TEACHERS = Registry("teacher")


class FrozenTeacher(nn.Module):
    """The teacher ``T``: never trained, always in eval mode, run without autograd.

    It applies its own preprocessing on its input path (resize to ``input_size``, channel order,
    ``mean``/``std``), so the student keeps its own normalisation.

    Args:
        backbone: maps preprocessed ``[B, 3, H, W]`` images to features.
        name: registry name (for logging and cache keys).
        input_size: side the teacher expects (e.g. 224); ``None`` keeps the incoming size.
        mean, std: normalisation in the teacher's channel order.
        channel_order: ``"RGB"`` or ``"BGR"`` (Keras-converted weights expect BGR).

    Shapes:
        ``[B, 3, H, W]`` in ``[0, 1]`` RGB (``[B, 1, H, W]`` grey is repeated to 3 channels) ->
        ``[B, feature_dim]`` (pooled) or ``[B, D, h, w]`` (maps).
    """

    def __init__(
        self,
        backbone: FeatureBackbone,
        name: str = "",
        input_size: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        channel_order: str = "RGB",
    ) -> None:
        super().__init__()
        if channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {channel_order!r}.")
        self.backbone = backbone
        self.name = name or getattr(backbone, "name", "")
        self.input_size = input_size
        self.channel_order = channel_order
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.feature_shape = backbone.feature_shape
        self.feature_dim = backbone.feature_dim
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        """The teacher stays in eval mode whatever the trainer asks (BatchNorm statistics stay frozen)."""
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in ``[0, 1]`` RGB (or grey ``[B, 1, H, W]``, repeated) -> the teacher's own input."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"Teacher {self.name!r} expects [B, 1 or 3, H, W] images, got shape {tuple(x.shape)}.")
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        if self.channel_order == "BGR":
            x = x.flip(1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.preprocess(x))


@TEACHERS.register_family("torchvision")
def torchvision_teacher(
    arch: str,
    weights: str | os.PathLike | None = None,
    trust_checkpoint: bool = False,
    input_size: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    **kwargs,
) -> FrozenTeacher:
    """Any torchvision classification architecture as a pooled-feature teacher, weights from a local file."""
    backbone = torchvision_backbone(arch, weights=weights, trust_checkpoint=trust_checkpoint, **kwargs)
    return FrozenTeacher(backbone, name=f"torchvision:{arch}", input_size=input_size, mean=mean, std=std)


for _arch in ("resnet50", "densenet121"):
    TEACHERS.register(_arch, lambda _a=_arch, **kw: torchvision_teacher(_a, **kw))


def build_teacher(name: str, weights: str | os.PathLike | None = None, **options) -> FrozenTeacher:
    """Build the frozen teacher registered as ``name`` (``resnet50``, ``torchvision:<arch>`` ...).

    Args:
        name: registry name.
        weights: a local weights file, ``hf-hub:<org>/<repo>/<file>[@rev]``, ``"imagenet"`` (``torchvision:``/
            ``timm:`` teachers) or ``"random"`` (dry runs, tests); see :mod:`monai_rd.networks.weights`.
            ``None`` also gives random weights but warns (:class:`RandomTeacherWarning`): say ``"random"``.
        options: builder options (``input_size``, ``mean``, ``std``, ``trust_checkpoint`` ...).

    The returned teacher carries ``weights_record`` (source, file, SHA-256 of the file actually loaded).
    """
    if weights is None:
        warnings.warn(
            f"build_teacher({name!r}) without weights gives a RANDOM teacher; pass weights='random' to say so, "
            "or a weights file.",
            RandomTeacherWarning,
            stacklevel=2,
        )
        weights = RANDOM
    record = resolve_weights(name, weights)
    arg = record.path
    if record.source == IMAGENET and imagenet_arch(name)[0] == "torchvision":
        arg = IMAGENET  # torchvision's own enum loads (and remaps) its file from the hub cache
    teacher = TEACHERS.build(name, weights=arg, **options)
    teacher.weights_record = record
    return teacher

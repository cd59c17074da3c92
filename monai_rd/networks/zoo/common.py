"""Pieces shared by the foundation-model zoo: normalisation constants and the frozen-teacher factory."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_rd.networks.nets.backbones import FeatureBackbone
from monai_rd.networks.nets.students import IMAGENET_MEAN, IMAGENET_STD
from monai_rd.networks.nets.teachers import FrozenTeacher

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "KERAS_CAFFE_MEAN_BGR",
    "make_teacher",
    "global_avg_pool",
]

#: OpenAI CLIP normalisation (RGB), used by PMC-CLIP and BiomedCLIP.
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: RadImageNet Keras weights: BGR input in [0, 1] minus the ImageNet mean in BGR order, no division by a std.
KERAS_CAFFE_MEAN_BGR = (0.406, 0.456, 0.485)


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, h, w] -> [B, C]``, or ``[B, C, d, h, w] -> [B, C]`` for volumes: the mean over the spatial axes."""
    return x.mean(dim=tuple(range(2, x.ndim)))


def make_teacher(
    model: nn.Module,
    name: str,
    input_size: int | None,
    mean: Sequence[float],
    std: Sequence[float],
    channel_order: str = "RGB",
) -> FrozenTeacher:
    """Wrap a feature network (classifier already removed) as a :class:`FrozenTeacher`.

    The feature shape is probed at ``input_size`` (the size the teacher resizes every input to), so that
    spatial maps report the shape the reprogrammer will really see.
    """
    backbone = FeatureBackbone(model, name=name, probe_size=input_size or 64)
    return FrozenTeacher(backbone, name=name, input_size=input_size, mean=mean, std=std, channel_order=channel_order)

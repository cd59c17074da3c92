"""Feature trunks of torchvision-layout CNNs: pooled vectors or spatial maps."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.networks.zoo.common import global_avg_pool

__all__ = ["ResNetTrunk", "DenseNetTrunk"]


class ResNetTrunk(nn.Module):
    """The stem and four stages of a ResNet (``conv1, bn1, relu, maxpool, layer1..layer4``: torchvision's names;
    MONAI's 2D/3D ``ResNet`` calls the stem activation ``act`` and may skip the max pool, ``no_max_pool``); the
    classifier is never called.

    Shapes: ``[B, C_in, H, W] -> [B, C]`` (``pooled``, global average of layer4) or ``[B, C, H/32, W/32]``; for
    a 3D ResNet ``[B, C_in, D, H, W] -> [B, C]`` or ``[B, C, d, h, w]``.
    """

    def __init__(self, model: nn.Module, pooled: bool = True) -> None:
        super().__init__()
        self.model = model
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.bn1(m.conv1(x))
        x = m.act(x) if hasattr(m, "act") else m.relu(x)
        if not getattr(m, "no_max_pool", False):
            x = m.maxpool(x)
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return global_avg_pool(x) if self.pooled else x


class DenseNetTrunk(nn.Module):
    """torchvision DenseNet ``features`` followed by ReLU (as in ``DenseNet.forward``).

    Shapes: ``[B, 3, H, W] -> [B, C]`` (``pooled``) or ``[B, C, H/32, W/32]``.
    """

    def __init__(self, features: nn.Module, pooled: bool = True) -> None:
        super().__init__()
        self.features = features
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x))
        return global_avg_pool(x) if self.pooled else x

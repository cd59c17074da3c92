"""The reprogramming module ``g``: standard residual blocks from teacher features to the student's width."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = ["ResidualMLPBlock", "ResidualConvBlock", "Reprogrammer"]


class ResidualMLPBlock(nn.Module):
    """ResNet basic block on vectors: ``relu(BN(W2 relu(BN(W1 x))) + shortcut(x))``, ``[B, d_in] -> [B, d_out]``.

    The shortcut is the identity when widths agree, else a linear projection with BatchNorm
    (ResNet's "option B").
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, out_features, bias=False)
        self.bn1 = nn.BatchNorm1d(out_features)
        self.fc2 = nn.Linear(out_features, out_features, bias=False)
        self.bn2 = nn.BatchNorm1d(out_features)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_features == out_features
            else nn.Sequential(nn.Linear(in_features, out_features, bias=False), nn.BatchNorm1d(out_features))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.fc1(x)))
        out = self.bn2(self.fc2(out))
        return self.act(out + self.shortcut(x))


class ResidualConvBlock(nn.Module):
    """ResNet basic block on maps: ``[B, C_in, h, w] -> [B, C_out, h, w]`` (3x3 convs, 1x1 projection)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class Reprogrammer(nn.Module):
    """``g``: maps teacher features to the student's feature space.

    On pooled vectors ``[B, d_T]`` it stacks :class:`ResidualMLPBlock`; on spatial maps ``[B, D, h, w]``
    it stacks :class:`ResidualConvBlock` and ends with global average pooling. Either way the output is
    ``[B, d_S]``, the student's feature width, so both branches share one head.

    Args:
        teacher_shape: the teacher's output shape without batch, ``(d_T,)`` or ``(D, h, w)``.
        out_features: ``d_S``.
        num_blocks: number of residual blocks (the first one changes the width).
        hidden_features: width of the intermediate blocks; default ``d_S``.
    """

    def __init__(
        self, teacher_shape: Sequence[int], out_features: int, num_blocks: int = 2, hidden_features: int | None = None
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}.")
        teacher_shape = tuple(teacher_shape)
        if len(teacher_shape) not in (1, 3):
            raise ValueError(f"Teacher features must be [B, d] or [B, D, h, w]; got per-sample shape {teacher_shape}.")
        hidden = hidden_features or out_features
        widths = [teacher_shape[0]] + [hidden] * (num_blocks - 1) + [out_features]
        block = ResidualMLPBlock if len(teacher_shape) == 1 else ResidualConvBlock
        layers: list[nn.Module] = [block(a, b) for a, b in zip(widths[:-1], widths[1:])]
        if len(teacher_shape) == 3:
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        self.blocks = nn.Sequential(*layers)
        self.out_features = out_features

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.blocks(f)

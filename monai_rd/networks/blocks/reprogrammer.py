"""The reprogramming module ``g``: standard residual blocks from teacher features to the student's width."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = ["ResidualMLPBlock", "ResidualConvBlock", "ResidualConv3dBlock", "AttentionPool", "Reprogrammer"]


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
    Volumes: 3D maps ``[B, D, d, h, w]`` go through :class:`ResidualConv3dBlock` and global average pooling;
    per-slice sequences ``[B, S, d_T]`` (a slice-wise 2D teacher) are pooled over slices by ``sequence_pool``
    (a learnable :class:`AttentionPool` by default, or ``"mean"``/``"max"``), then go through the MLP blocks.

    Args:
        teacher_shape: the teacher's output shape without batch, ``(d_T,)`` or ``(D, h, w)``.
        out_features: ``d_S``.
        num_blocks: number of residual blocks (the first one changes the width).
        hidden_features: width of the intermediate blocks; default ``d_S``.
        sequence_pool: for ``(S, d_T)`` sequences, ``"attention"``, ``"mean"`` or ``"max"`` over slices.
    """

    def __init__(
        self,
        teacher_shape: Sequence[int],
        out_features: int,
        num_blocks: int = 2,
        hidden_features: int | None = None,
        sequence_pool: str = "attention",
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}.")
        teacher_shape = tuple(teacher_shape)
        if len(teacher_shape) not in (1, 2, 3, 4):
            raise ValueError(
                "Teacher features must be [B, d], [B, S, d] (per slice), [B, D, h, w] or [B, D, d, h, w]; "
                f"got per-sample shape {teacher_shape}."
            )
        hidden = hidden_features or out_features
        pre: list[nn.Module] = []
        if len(teacher_shape) == 2:  # a sequence of per-slice features: pool over slices first
            pre = [_sequence_pool(sequence_pool, teacher_shape[1])]
            teacher_shape = teacher_shape[1:]
        widths = [teacher_shape[0]] + [hidden] * (num_blocks - 1) + [out_features]
        block = {1: ResidualMLPBlock, 3: ResidualConvBlock, 4: ResidualConv3dBlock}[len(teacher_shape)]
        layers: list[nn.Module] = pre + [block(a, b) for a, b in zip(widths[:-1], widths[1:])]
        if len(teacher_shape) == 3:
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        if len(teacher_shape) == 4:
            layers += [nn.AdaptiveAvgPool3d(1), nn.Flatten(1)]
        self.blocks = nn.Sequential(*layers)
        self.out_features = out_features

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.blocks(f)


class ResidualConv3dBlock(nn.Module):
    """ResNet basic block on volumes: ``[B, C_in, d, h, w] -> [B, C_out, d, h, w]`` (3x3x3 convs, 1x1x1 projection)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, bias=False), nn.BatchNorm3d(out_channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class AttentionPool(nn.Module):
    """Learnable attention pooling over a sequence (Ilse et al. 2018, gated-free form): ``[B, S, d] -> [B, d]``.

    ``a = softmax_S(w^T tanh(V f_s))``, output ``sum_s a_s f_s``. It is part of ``g`` (trainable), so the frozen
    slice-wise teacher stays a pure function of the volume.
    """

    def __init__(self, features: int, hidden: int = 128) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(self.score(f).squeeze(-1), dim=1)  # [B, S]
        return torch.einsum("bs,bsd->bd", a, f)


class _ReduceSequence(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f.mean(dim=1) if self.mode == "mean" else f.amax(dim=1)


def _sequence_pool(mode: str, features: int) -> nn.Module:
    if mode == "attention":
        return AttentionPool(features)
    if mode in ("mean", "max"):
        return _ReduceSequence(mode)
    raise ValueError(f"sequence_pool must be 'attention', 'mean' or 'max', got {mode!r}.")

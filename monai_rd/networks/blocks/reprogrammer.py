"""The reprogramming module ``g``: standard residual blocks from teacher features to the student's width.

At the paper's full width the first block maps ``d_T`` to ``d_S`` directly (with a ``d_T x d_S`` projection
shortcut), so ``g`` can hold several times the student's parameters (7.4 M on a 2048-d teacher for a 1.5 M
MobileNetV3-small) and, memory-bound on the CPU, cost more per step than the student. With a bottleneck
``width`` ``p`` a 1x1 projection ``d_T -> p`` comes first and the same residual blocks run at width ``p``
(the last one ending at ``d_S``), about ``p (d_T + 3p + 2 d_S)`` parameters for two blocks;
:func:`bottleneck_width` picks ``p`` from a parameter budget (e.g. a fraction of the student's).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Norm

__all__ = [
    "ResidualMLPBlock",
    "ResidualConvBlock",
    "AttentionPool",
    "Reprogrammer",
    "bottleneck_width",
    "budget_width",
    "count_parameters",
]


class ResidualMLPBlock(nn.Module):
    """ResNet basic block on vectors: ``relu(BN(W2 relu(BN(W1 x))) + shortcut(x))``, ``[B, d_in] -> [B, d_out]``.

    The shortcut is the identity when widths agree, else a linear projection with BatchNorm
    (ResNet's "option B"). ``hidden_features`` is the width between ``fc1`` and ``fc2`` (default ``out_features``).
    """

    def __init__(self, in_features: int, out_features: int, hidden_features: int | None = None) -> None:
        super().__init__()
        hidden = hidden_features or out_features
        self.fc1 = nn.Linear(in_features, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, out_features, bias=False)
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
    """ResNet basic block on maps or volumes: ``[B, C_in, *S] -> [B, C_out, *S]`` with ``S`` = ``(h, w)`` for
    ``spatial_dims=2`` (3x3 convs, 1x1 projection) or ``(d, h, w)`` for ``spatial_dims=3`` (3x3x3, 1x1x1).

    ``hidden_channels`` is the width between the two convolutions (default ``out_channels``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, hidden_channels: int | None = None, spatial_dims: int = 2
    ) -> None:
        super().__init__()
        conv, norm = Conv[Conv.CONV, spatial_dims], Norm[Norm.BATCH, spatial_dims]
        hidden = hidden_channels or out_channels
        self.conv1 = conv(in_channels, hidden, 3, padding=1, bias=False)
        self.bn1 = norm(hidden)
        self.conv2 = conv(hidden, out_channels, 3, padding=1, bias=False)
        self.bn2 = norm(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(conv(in_channels, out_channels, 1, bias=False), norm(out_channels))
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


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


class Reprogrammer(nn.Module):
    """``g``: maps teacher features to the student's feature space.

    On pooled vectors ``[B, d_T]`` it stacks :class:`ResidualMLPBlock`; on spatial maps ``[B, D, h, w]``
    it stacks :class:`ResidualConvBlock` and ends with global average pooling. Either way the output is
    ``[B, d_S]``, the student's feature width, so both branches share one head.

    Args:
        teacher_shape: the teacher's output shape without batch: ``(d_T,)``, ``(S, d_T)`` (per-slice features of
            a slice-wise teacher), ``(D, h, w)`` or ``(D, d, h, w)`` (3D maps: :class:`ResidualConvBlock` with
            ``spatial_dims=3``).
        out_features: ``d_S``.
        num_blocks: number of residual blocks (the first one changes the width).
        hidden_features: width of the intermediate blocks when ``width`` is None; default ``d_S``.
        width: bottleneck width ``p``: a 1x1 projection ``d_T -> p`` (linear or 1x1 conv, BatchNorm, ReLU)
            comes first, then ``num_blocks`` residual blocks run at width ``p``, the last one ending at
            ``d_S``. ``None``: the paper's full-width blocks ``d_T -> hidden -> ... -> d_S``.
        sequence_pool: for ``(S, d_T)`` per-slice sequences, ``"attention"`` (:class:`AttentionPool`, trainable),
            ``"mean"`` or ``"max"`` over slices, before the blocks.
    """

    def __init__(
        self,
        teacher_shape: Sequence[int],
        out_features: int,
        num_blocks: int = 2,
        hidden_features: int | None = None,
        width: int | None = None,
        sequence_pool: str = "attention",
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}.")
        if width is not None and int(width) < 1:
            raise ValueError(f"Reprogrammer width must be a positive integer or None, got {width}.")
        teacher_shape = tuple(teacher_shape)
        if len(teacher_shape) not in (1, 2, 3, 4):
            raise ValueError(
                "Teacher features must be [B, d], [B, S, d] (per slice), [B, D, h, w] or [B, D, d, h, w]; "
                f"got per-sample shape {teacher_shape}."
            )
        pre: list[nn.Module] = []
        if len(teacher_shape) == 2:  # a sequence of per-slice features: pool over slices first
            pre = [_sequence_pool(sequence_pool, teacher_shape[1])]
            teacher_shape = teacher_shape[1:]
        kind = len(teacher_shape)  # 1: vectors, 3: 2D maps, 4: 3D maps
        block = ResidualMLPBlock if kind == 1 else functools.partial(ResidualConvBlock, spatial_dims=kind - 1)
        self.projection: nn.Module | None = None
        if width is None:
            hidden = hidden_features or out_features
            widths = [teacher_shape[0]] + [hidden] * (num_blocks - 1) + [out_features]
            layers: list[nn.Module] = [block(a, b) for a, b in zip(widths[:-1], widths[1:])]
        else:
            p = int(width)
            linear, norm = {1: (nn.Linear, nn.BatchNorm1d), 3: (nn.Conv2d, nn.BatchNorm2d),
                            4: (nn.Conv3d, nn.BatchNorm3d)}[kind]  # fmt: skip
            project = (
                linear(teacher_shape[0], p, bias=False) if kind == 1 else linear(teacher_shape[0], p, 1, bias=False)
            )
            self.projection = nn.Sequential(project, norm(p), nn.ReLU(inplace=True))
            widths = [p] * num_blocks + [out_features]
            layers = [block(a, b, p) for a, b in zip(widths[:-1], widths[1:])]
        if kind == 3:
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        if kind == 4:
            layers += [nn.AdaptiveAvgPool3d(1), nn.Flatten(1)]
        self.pre = nn.Sequential(*pre)
        self.blocks = nn.Sequential(*layers)
        self.out_features = out_features
        self.width = None if width is None else int(width)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = self.pre(f)
        if self.projection is not None:
            f = self.projection(f)
        return self.blocks(f)


def bottleneck_width(
    teacher_shape: Sequence[int], out_features: int, max_params: int, num_blocks: int = 2, multiple: int = 16
) -> int | None:
    """The largest bottleneck width ``p`` (a multiple of ``multiple``) whose :class:`Reprogrammer` holds at most
    ``max_params`` parameters; ``None`` (full width) when the full-width ``g`` already fits.

    ``p`` never exceeds ``min(d_T, d_S)`` (a wider projection only adds cost) and is at least ``multiple``
    (even when that exceeds the budget: ``g`` needs some width). Counted on the ``meta`` device, nothing allocated.
    """
    if max_params < 1:
        raise ValueError(f"max_params must be >= 1, got {max_params}.")

    def params(width: int | None) -> int:
        with torch.device("meta"):
            return count_parameters(Reprogrammer(teacher_shape, out_features, num_blocks, width=width))

    if params(None) <= max_params:
        return None
    d_t = int(teacher_shape[-1] if len(teacher_shape) == 2 else teacher_shape[0])  # per-slice sequences: (S, d)
    lo, hi = 1, max(1, min(d_t, int(out_features)) // multiple)
    if params(hi * multiple) <= max_params:
        return hi * multiple
    while lo < hi:  # parameters grow with p: binary search for the last p that fits
        mid = (lo + hi + 1) // 2
        if params(mid * multiple) <= max_params:
            lo = mid
        else:
            hi = mid - 1
    return lo * multiple


def budget_width(
    teacher_shape: Sequence[int], student: nn.Module, budget: float | None, num_blocks: int = 2
) -> int | None:
    """The width of ``g`` (a :class:`Reprogrammer` onto ``student.feature_dim``) under a parameter budget:
    :func:`bottleneck_width` for at most ``budget`` times the student's parameters; ``None`` (the paper's
    full-width ``g``) when ``budget`` is None or the full width fits."""
    if budget is None:
        return None
    if not budget > 0:
        raise ValueError(f"reprogrammer_budget must be > 0 (a fraction of the student's parameters) or None (the "
                         f"paper's full-width g), got {budget}.")  # fmt: skip
    max_params = max(1, int(budget * count_parameters(student)))
    return bottleneck_width(teacher_shape, student.feature_dim, max_params, num_blocks=num_blocks)

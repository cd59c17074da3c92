"""Variational Information Distillation (Ahn et al., CVPR 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.losses.feature_shapes import as_feature_list, pool_to_common, to_map

__all__ = ["VIDLoss", "LayerwiseVIDLoss"]


class VIDLoss(nn.Module):
    """Negative log-likelihood of the teacher feature under a heteroscedastic Gaussian predicted from the student.

    ``-log q(t | s) = sum_{c,h,w} [ log sigma_c + (t_chw - mu_chw(s))^2 / (2 sigma_c^2) ] + const`` with
    ``mu`` a regressor of three 1x1 convolutions (ReLU between) and a learned per-channel variance
    ``sigma_c^2 = softplus(alpha_c) + eps``, initialised to ``init_var``. Reduced by the mean over all elements
    (constant ``log sqrt(2 pi)`` dropped), as in the authors' code.

    Args:
        student_channels: ``C_S``.
        teacher_channels: ``C_T``.
        mid_channels: width of the regressor's hidden layers (default ``C_T``).
        init_var: initial variance ``sigma_c^2`` (5.0 in the authors' code).
        eps: variance floor.
        num_prefix_tokens: prefix tokens dropped when tokens are laid out as maps (None: auto).

    Shapes: ``student`` ``[B, C_S, H, W]`` / ``[B, N, D]`` / ``[B, D]``, ``teacher`` likewise with ``C_T``;
    resolutions may differ (the larger map is average-pooled) -> scalar.
    """

    def __init__(
        self,
        student_channels: int,
        teacher_channels: int,
        mid_channels: int | None = None,
        init_var: float = 5.0,
        eps: float = 1e-5,
        num_prefix_tokens: int | None = None,
    ) -> None:
        super().__init__()
        if init_var <= eps:
            raise ValueError(f"init_var must exceed eps={eps}, got {init_var}.")
        mid = int(mid_channels or teacher_channels)
        self.regressor = nn.Sequential(
            nn.Conv2d(student_channels, mid, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(mid, teacher_channels, 1, bias=False),
        )
        # softplus^{-1}(init_var - eps)
        alpha0 = math.log(math.expm1(init_var - eps))
        self.alpha = nn.Parameter(torch.full((teacher_channels,), alpha0))
        self.eps = float(eps)
        self.num_prefix_tokens = num_prefix_tokens

    def variance(self) -> torch.Tensor:
        """Per-channel variance ``softplus(alpha) + eps``, ``[C_T]``."""
        return F.softplus(self.alpha) + self.eps

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        s, t = to_map(student, "student", self.num_prefix_tokens), to_map(teacher, "teacher", self.num_prefix_tokens)
        if t.shape[1] != self.alpha.numel() or s.shape[1] != self.regressor[0].in_channels:
            raise ValueError(
                f"VIDLoss was built for {self.regressor[0].in_channels} -> {self.alpha.numel()} channels, got "
                f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)}."
            )
        s, t = pool_to_common(s, t)
        mu = self.regressor(s)
        var = self.variance().view(1, -1, 1, 1)
        nll = 0.5 * ((mu - t) ** 2 / var + torch.log(var))
        return nll.mean()


class LayerwiseVIDLoss(nn.Module):
    """VID at several layer pairs: one :class:`VIDLoss` (its own regressor and variances) per pair, summed, as
    RepDistiller distils every stage (one ``VIDLoss`` per pair of ``feat[1:-1]``, their values summed).

    Args:
        student_channels, teacher_channels: ``C_S`` and ``C_T`` of each pair.
        options: :class:`VIDLoss` options shared by every pair.

    Shapes: lists of per-pair features (see :class:`VIDLoss`) -> scalar.
    """

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int], **options) -> None:
        super().__init__()
        if len(student_channels) != len(teacher_channels) or not student_channels:
            raise ValueError(
                f"LayerwiseVIDLoss pairs student and teacher layers one to one, got {len(student_channels)} student "
                f"and {len(teacher_channels)} teacher widths."
            )
        self.pairs = nn.ModuleList(VIDLoss(cs, ct, **options) for cs, ct in zip(student_channels, teacher_channels))

    def forward(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        fs, ft = as_feature_list(student), as_feature_list(teacher)
        if len(fs) != len(self.pairs) or len(ft) != len(self.pairs):
            raise ValueError(
                f"LayerwiseVIDLoss was built for {len(self.pairs)} layer pairs, got {len(fs)} student and {len(ft)} "
                "teacher features."
            )
        return sum(vid(s, t) for vid, s, t in zip(self.pairs, fs, ft))

"""FitNets hint loss (Romero et al., ICLR 2015): a trainable regressor maps the student width to the teacher's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.losses.feature_shapes import as_feature_list, pool_to_common, to_map

__all__ = ["HintLoss"]


class HintLoss(nn.Module):
    """``mean((r(F_S) - F_T)^2)`` per layer pair, summed over pairs.

    ``r`` is a 1x1 convolution (with bias) from the student width ``C_S`` to the teacher width ``C_T``; on
    ``[B, D]`` vectors it is a linear layer. The regressor is linear (no ReLU) so that it can reach teacher
    features of either sign (ViT tokens). The paper's ``1/2 ||u_h - r(v_g)||^2`` is reduced by the mean over all
    elements, as RepDistiller and torchdistill do.

    Args:
        student_channels: ``C_S`` per layer pair (an int for one pair).
        teacher_channels: ``C_T`` per layer pair.
        num_prefix_tokens: prefix tokens dropped when ``[B, N, D]`` tokens are laid out as maps (None: auto).

    Shapes: ``student`` ``[B, C_S, H, W]`` / ``[B, N, D]`` / ``[B, D]`` (or a list, one per pair), ``teacher``
    likewise with ``C_T``; resolutions may differ (the larger map is average-pooled) -> scalar.
    """

    def __init__(
        self,
        student_channels: int | Sequence[int],
        teacher_channels: int | Sequence[int],
        num_prefix_tokens: int | None = None,
    ) -> None:
        super().__init__()
        cs = [student_channels] if isinstance(student_channels, int) else list(student_channels)
        ct = [teacher_channels] if isinstance(teacher_channels, int) else list(teacher_channels)
        if len(cs) != len(ct):
            raise ValueError(f"HintLoss needs one teacher layer per student layer, got {len(cs)} and {len(ct)}.")
        self.regressors = nn.ModuleList(nn.Conv2d(s, t, kernel_size=1) for s, t in zip(cs, ct))
        self.num_prefix_tokens = num_prefix_tokens

    def forward(
        self, student: torch.Tensor | Sequence[torch.Tensor], teacher: torch.Tensor | Sequence[torch.Tensor]
    ) -> torch.Tensor:
        fs, ft = as_feature_list(student), as_feature_list(teacher)
        if len(fs) != len(self.regressors) or len(ft) != len(self.regressors):
            raise ValueError(
                f"HintLoss was built for {len(self.regressors)} layer pair(s), got {len(fs)} student and "
                f"{len(ft)} teacher features."
            )
        total = 0.0
        for reg, s, t in zip(self.regressors, fs, ft):
            s = to_map(s, "student", self.num_prefix_tokens)
            t = to_map(t, "teacher", self.num_prefix_tokens)
            if s.shape[1] != reg.in_channels or t.shape[1] != reg.out_channels:
                raise ValueError(
                    f"HintLoss regressor maps {reg.in_channels} -> {reg.out_channels} channels, got student "
                    f"{tuple(s.shape)} and teacher {tuple(t.shape)}."
                )
            s, t = pool_to_common(s, t)
            total = total + F.mse_loss(reg(s), t)
        return total

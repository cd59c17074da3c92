"""SemCKD: cross-layer distillation with semantic calibration (Chen et al., AAAI 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.losses.feature_shapes import as_feature_list, pool_to_common, to_map

__all__ = ["SemCKDLoss"]


class _Embed(nn.Module):
    """``normalize(W2 relu(W1 x))``: ``[B, n_in] -> [B, n_out]`` (query/key heads on similarity rows)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_in, 2 * n_out), nn.Linear(2 * n_out, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc2(F.relu(self.fc1(x))), dim=1)


def _projector(c_in: int, c_out: int, mid: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, mid, 1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(),
        nn.Conv2d(mid, mid, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(),
        nn.Conv2d(mid, c_out, 1, bias=False),
    )


class SemCKDLoss(nn.Module):
    """Each student layer ``i`` distils from all teacher layers ``j``, weighted by a learned attention ``alpha_ij``.

    * Per-sample similarity rows: ``A_i = F_i F_i^T`` ``[B, B]`` with ``F_i`` the flattened layer output.
    * Query ``q_i = Embed^Q_i(A^S_i)``, key ``k_j = Embed^K_j(A^T_j)`` (``[B, B / factor]``, L2-normalised);
      ``alpha_b = softmax_j(<q_ib, k_jb>)`` ``[B, S, T]``.
    * ``d_bij = mean_{c,h,w} (P_ij(F^S_i) - F^T_j)^2`` with a projector ``P_ij`` to the teacher width
      (1x1 conv, BN, ReLU, 3x3 conv, BN, ReLU, 1x1 conv; hidden width ``2 C^T_j`` as in the authors' code), after
      average-pooling the larger map to the smaller resolution.
    * Loss ``sum_{b,i,j} alpha_bij d_bij / (B * S)``.

    The similarity rows have the batch size as width, so the heads are built for a fixed ``batch_size`` (use
    ``drop_last=True`` in the training loader); another batch size is refused.

    Args:
        student_channels: ``C^S_i`` per student layer.
        teacher_channels: ``C^T_j`` per teacher layer.
        batch_size: training batch size ``B``.
        factor: reduction of the query/key width ``B / factor`` (4 in the authors' code).
        proj_mid_channels: hidden width of every projector (None: ``2 C^T_j``; lower it for wide ViT teachers).
        num_prefix_tokens: prefix tokens dropped when tokens are laid out as maps (None: auto).

    Shapes: ``student`` list of ``S`` tensors ``[B, C^S_i, H_i, W_i]`` (or tokens/vectors), ``teacher`` list of
    ``T`` tensors ``[B, C^T_j, H_j, W_j]`` -> scalar. ``.last_attention`` holds ``alpha`` ``[B, S, T]``.
    """

    def __init__(
        self,
        student_channels: Sequence[int],
        teacher_channels: Sequence[int],
        batch_size: int,
        factor: int = 4,
        proj_mid_channels: int | None = None,
        num_prefix_tokens: int | None = None,
    ) -> None:
        super().__init__()
        self.cs, self.ct = list(student_channels), list(teacher_channels)
        self.batch_size = int(batch_size)
        if self.batch_size < 2:
            raise ValueError(f"SemCKD needs batch_size >= 2 (batch similarity rows), got {batch_size}.")
        d = max(1, self.batch_size // factor)
        self.query = nn.ModuleList(_Embed(self.batch_size, d) for _ in self.cs)
        self.key = nn.ModuleList(_Embed(self.batch_size, d) for _ in self.ct)
        self.proj = nn.ModuleList(
            nn.ModuleList(_projector(s, t, int(proj_mid_channels or 2 * t)) for t in self.ct) for s in self.cs
        )
        self.num_prefix_tokens = num_prefix_tokens
        self.last_attention: torch.Tensor | None = None

    @staticmethod
    def _similarity(x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(1)
        return f @ f.t()

    def forward(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        fs = [to_map(x, "student", self.num_prefix_tokens) for x in as_feature_list(student)]
        ft = [to_map(x, "teacher", self.num_prefix_tokens) for x in as_feature_list(teacher)]
        if [x.shape[1] for x in fs] != self.cs or [x.shape[1] for x in ft] != self.ct:
            raise ValueError(
                f"SemCKD was built for student channels {self.cs} and teacher channels {self.ct}, got "
                f"{[tuple(x.shape) for x in fs]} and {[tuple(x.shape) for x in ft]}."
            )
        b = fs[0].shape[0]
        if b != self.batch_size or any(x.shape[0] != b for x in fs + ft):
            raise ValueError(
                f"SemCKD was built for batch size {self.batch_size} (its query/key heads read [B, B] similarity "
                f"rows), got batches {[x.shape[0] for x in fs + ft]}; use drop_last=True in the training loader."
            )
        q = torch.stack([h(self._similarity(x)) for h, x in zip(self.query, fs)], dim=1)  # [B, S, d]
        k = torch.stack([h(self._similarity(x)) for h, x in zip(self.key, ft)], dim=1)  # [B, T, d]
        att = torch.softmax(torch.einsum("bsd,btd->bst", q, k), dim=-1)
        dist = torch.empty(b, len(fs), len(ft), device=att.device, dtype=att.dtype)
        for i, s in enumerate(fs):
            for j, t in enumerate(ft):
                s_ij, t_ij = pool_to_common(s, t)
                dist[:, i, j] = (self.proj[i][j](s_ij) - t_ij).pow(2).flatten(1).mean(1)
        self.last_attention = att.detach()
        return (att * dist).sum() / (b * len(fs))

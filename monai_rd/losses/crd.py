"""Contrastive Representation Distillation (Tian et al., ICLR 2020) with momentum memory banks."""

from __future__ import annotations

from collections.abc import Sequence

import logging
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.losses.feature_shapes import to_vector

__all__ = ["CRDLoss", "nce_loss"]

logger = logging.getLogger(__name__)


def _gather(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[n, ...]`` of every DDP rank concatenated along dim 0 (``x`` itself outside DDP); no gradient."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from monai.utils import evenly_divisible_all_gather

    return evenly_divisible_all_gather(x.contiguous(), concat=True)


def nce_loss(scores: torch.Tensor, num_data: int, eps: float = 1e-7) -> torch.Tensor:
    """NCE objective of CRD eq. (18) on normalised scores ``[B, K + 1]`` (column 0 the positive).

    With noise probability ``P_n = 1 / num_data`` and ``m = K``:
    ``-1/B sum_b [ log(h_pos / (h_pos + m P_n)) + sum_k log(m P_n / (h_k + m P_n)) ]``.
    """
    b, k1 = scores.shape
    m_pn = (k1 - 1) / float(num_data)
    pos, neg = scores[:, 0], scores[:, 1:]
    log_d1 = torch.log(pos / (pos + m_pn + eps))
    log_d0 = torch.log(m_pn / (neg + m_pn + eps))
    return -(log_d1.sum() + log_d0.sum()) / b


class CRDLoss(nn.Module):
    """CRD: student and teacher embeddings contrasted against memory banks of the whole dataset.

    * Embedding heads: ``v_S = normalize(W_S f_S)``, ``v_T = normalize(W_T f_T)`` (linear, ``feat_dim`` outputs).
    * Memory banks ``M_S, M_T`` ``[num_data, feat_dim]``, uniform in ``+-1/sqrt(feat_dim / 3)`` at start; after each
      training forward, rows of the batch's dataset indices become
      ``normalize(momentum * M[i] + (1 - momentum) * v_i)``.
    * Scores ``h = exp(<M_T[j], v_S> / T) / Z_S`` and ``exp(<M_S[j], v_T> / T) / Z_T`` for ``j`` in the positive
      index followed by ``K`` negatives; ``Z`` is fixed on the first call to ``mean(exp(.)) * num_data``.
    * Loss: :func:`nce_loss` on both score sets, summed.

    Negatives are drawn with a seeded generator: with ``labels``, uniformly (with replacement) from the samples of
    the other classes, as the reference code's classification loaders do (RepDistiller's ``mode="exact"``);
    without, uniformly from the dataset indices other than the positive. Or they are given as ``contrast_index``.

    Args:
        student_dim: student feature width ``D_S`` (maps/tokens are averaged to vectors first).
        teacher_dim: teacher feature width ``D_T``.
        num_data: number of training samples (memory bank rows); dataset indices lie in ``[0, num_data)``.
        feat_dim: embedding width (128 in the paper).
        num_negatives: ``K`` (the paper's 16384); capped at ``num_data - 1`` with a warning in the log.
        temperature: ``T`` (0.07).
        momentum: memory momentum (0.5).
        seed: seed of the memory initialisation and negative sampling.
        labels: class index of each training sample ``[num_data]`` (single-label data): negatives come from
            other classes. ``None`` (multi-label data, or no labels): from all other samples.

    Shapes: ``student`` ``[B, D_S]`` (or ``[B, C, H, W]``/``[B, N, D]``, averaged), ``teacher`` ``[B, D_T]``,
    ``index`` ``[B]`` int64 dataset indices, ``contrast_index`` ``[B, K]`` -> scalar.
    """

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        num_data: int,
        feat_dim: int = 128,
        num_negatives: int = 16384,
        temperature: float = 0.07,
        momentum: float = 0.5,
        seed: int = 0,
        labels: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if num_data < 2:
            raise ValueError(f"CRD needs num_data >= 2 (the size of the training set), got {num_data}.")
        k = int(num_negatives)
        if k < 1:
            raise ValueError(f"num_negatives must be >= 1, got {k}.")
        self._others: dict[int, torch.Tensor] | None = None
        if labels is not None:
            labels = torch.as_tensor(labels).long().view(-1)
            if labels.numel() != num_data:
                raise ValueError(
                    f"CRD labels must give one class per training sample ({num_data}), got {labels.numel()}."
                )
            self._others = {int(c): torch.nonzero(labels != c).flatten() for c in labels.unique()}
            if any(o.numel() == 0 for o in self._others.values()):
                raise ValueError("CRD draws negatives from the other classes, but the training set has one class.")
            self._labels = labels  # CPU: sampling runs there with the seeded generator
        elif k > num_data - 1:
            logger.warning(
                f"CRD: {k} negatives asked for but the training set has {num_data} samples; using all "
                f"{num_data - 1} other samples as negatives (num_negatives capped at num_data - 1)."
            )
            k = num_data - 1
        self.embed_s = nn.Linear(student_dim, feat_dim)
        self.embed_t = nn.Linear(teacher_dim, feat_dim)
        self.num_data, self.num_negatives, self.feat_dim = int(num_data), k, int(feat_dim)
        self.temperature, self.momentum = float(temperature), float(momentum)
        gen = torch.Generator().manual_seed(seed)
        stdv = 1.0 / math.sqrt(feat_dim / 3.0)
        self.register_buffer("memory_s", (torch.rand(num_data, feat_dim, generator=gen) * 2 - 1) * stdv)
        self.register_buffer("memory_t", (torch.rand(num_data, feat_dim, generator=gen) * 2 - 1) * stdv)
        self.register_buffer("z", torch.full((2,), -1.0))  # Z_S, Z_T; < 0 until set on the first call
        self.ddp_local_buffers = ("memory_s", "memory_t", "z")  # kept in step across ranks by all-gathers
        self._generator = torch.Generator().manual_seed(seed + 1)

    def sample_negatives(self, index: torch.Tensor) -> torch.Tensor:
        """``K`` indices per row: ``[B]`` -> ``[B, K]``, from the other classes' samples (``labels``) or uniform
        over ``[0, num_data)`` without the positive."""
        if self._others is not None:
            out = torch.empty(index.shape[0], self.num_negatives, dtype=torch.long)
            classes = self._labels[index.cpu()]
            for c in classes.unique().tolist():
                rows = torch.nonzero(classes == c).flatten()
                pool = self._others[c]
                pick = torch.randint(0, pool.numel(), (rows.numel(), self.num_negatives), generator=self._generator)
                out[rows] = pool[pick]
            return out.to(index.device)
        r = torch.randint(0, self.num_data - 1, (index.shape[0], self.num_negatives), generator=self._generator)
        r = r.to(index.device)
        return r + (r >= index[:, None]).long()

    def _scores(self, memory: torch.Tensor, idx: torch.Tensor, v: torch.Tensor, slot: int) -> torch.Tensor:
        w = memory[idx].detach()  # [B, K + 1, feat_dim]
        out = torch.exp(torch.einsum("bkd,bd->bk", w, v) / self.temperature)
        if self.z[slot] < 0:
            self.z[slot] = _gather(out.detach().mean().view(1)).mean() * self.num_data
        return out / self.z[slot].clone()

    @torch.no_grad()
    def _update(self, memory: torch.Tensor, index: torch.Tensor, v: torch.Tensor) -> None:
        index, v = _gather(index), _gather(v.detach())  # under DDP every rank applies every rank's batch
        rows = memory[index] * self.momentum + v * (1.0 - self.momentum)
        memory.index_copy_(0, index, F.normalize(rows, dim=1))

    def forward(
        self,
        student: torch.Tensor,
        teacher: torch.Tensor,
        index: torch.Tensor,
        contrast_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        index = torch.as_tensor(index).long().view(-1).to(self.memory_s.device)
        fs, ft = to_vector(student, "student"), to_vector(teacher, "teacher")
        if fs.shape[0] != index.numel() or ft.shape[0] != index.numel():
            raise ValueError(
                f"CRD needs one dataset index per sample: student {tuple(student.shape)}, teacher "
                f"{tuple(teacher.shape)}, index {tuple(index.shape)}."
            )
        if index.min() < 0 or index.max() >= self.num_data:
            raise ValueError(
                f"CRD dataset indices must lie in [0, {self.num_data}) (num_data = training-set size), got "
                f"[{int(index.min())}, {int(index.max())}]. Add the sample index to each batch."
            )
        if contrast_index is None:
            contrast_index = self.sample_negatives(index)
        contrast_index = torch.as_tensor(contrast_index).long().to(index.device)
        if contrast_index.shape != (index.numel(), self.num_negatives):
            raise ValueError(
                f"contrast_index must be [B, K] = [{index.numel()}, {self.num_negatives}], "
                f"got {tuple(contrast_index.shape)}."
            )
        idx = torch.cat([index[:, None], contrast_index], dim=1)
        v_s = F.normalize(self.embed_s(fs), dim=1)
        v_t = F.normalize(self.embed_t(ft), dim=1)
        scores_s = self._scores(self.memory_t, idx, v_s, 0)  # student anchor vs teacher memory
        scores_t = self._scores(self.memory_s, idx, v_t, 1)  # teacher anchor vs student memory
        loss = nce_loss(scores_s, self.num_data) + nce_loss(scores_t, self.num_data)
        if self.training:
            self._update(self.memory_s, index, v_s)
            self._update(self.memory_t, index, v_t)
        return loss

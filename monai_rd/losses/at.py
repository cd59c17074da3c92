"""Attention Transfer (Zagoruyko & Komodakis, ICLR 2017), activation-based spatial attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.losses.feature_shapes import as_feature_list, pool_to_common, to_map

__all__ = ["ATLoss", "attention_map"]


def attention_map(x: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``Q = sum_c |A_c|^p`` flattened and L2-normalised: ``[B, C, H, W]`` -> ``[B, H * W]``."""
    q = x.abs().pow(p).sum(dim=1).flatten(1)
    return F.normalize(q, p=2, dim=1)


class ATLoss(nn.Module):
    """``beta * sum_j mean_{b, hw} (Q_S^j / ||Q_S^j|| - Q_T^j / ||Q_T^j||)^2``.

    The paper's eq. (2) with ``p = 2`` as the reference recipes compute it: the squared difference of the
    normalised maps is averaged over batch and positions (the paper's "beta divided by the number of elements in
    the attention map and the batch size"), summed over the tapped pairs, and weighted by ``beta = 1000`` as
    RepDistiller (``-b 1000``), mdistiller and the RD authors' training code do. Eq. (2) writes ``beta / 2``:
    ``beta=500`` gives that reading. Channels need not match (attention maps are channel-free); resolutions may
    differ (the larger map is average-pooled first).

    Args:
        p: exponent of the attention map (2 in the paper).
        beta: weight of the summed mean squared differences (1000, as the reference recipes).
        num_prefix_tokens: prefix tokens dropped when tokens are laid out as maps (None: auto).

    Shapes: ``student``/``teacher`` ``[B, C, H, W]`` maps or ``[B, N, D]`` tokens (a list for several pairs)
    -> scalar. ``[B, D]`` vectors have no spatial attention and are refused.
    """

    def __init__(self, p: float = 2.0, beta: float = 1000.0, num_prefix_tokens: int | None = None) -> None:
        super().__init__()
        self.p, self.beta, self.num_prefix_tokens = float(p), float(beta), num_prefix_tokens

    def forward(
        self, student: torch.Tensor | Sequence[torch.Tensor], teacher: torch.Tensor | Sequence[torch.Tensor]
    ) -> torch.Tensor:
        fs, ft = as_feature_list(student), as_feature_list(teacher)
        if len(fs) != len(ft):
            raise ValueError(f"ATLoss needs one teacher layer per student layer, got {len(fs)} and {len(ft)}.")
        total = 0.0
        for s, t in zip(fs, ft):
            if s.ndim == 2 or t.ndim == 2:
                raise ValueError(
                    f"ATLoss needs spatial features ([B, C, H, W] maps or [B, N, D] tokens), got student "
                    f"{tuple(s.shape)} and teacher {tuple(t.shape)}; use the pre-pooling feature maps."
                )
            s = to_map(s, "student", self.num_prefix_tokens)
            t = to_map(t, "teacher", self.num_prefix_tokens)
            s, t = pool_to_common(s, t)
            diff = attention_map(s, self.p) - attention_map(t, self.p)
            total = total + diff.pow(2).mean()
        return self.beta * total

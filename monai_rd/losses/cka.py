"""Linear Centered Kernel Alignment (Kornblith et al., 2019) and the CKA distillation loss."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.nn.modules.loss import _Loss

__all__ = ["linear_cka", "CKALoss", "gather_across_ranks"]


def gather_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` ``[n, ...]`` from every rank along the batch: ``[world_size * n, ...]``.

    Outside an initialised process group (or with one rank) ``x`` is returned as is. The gather is
    differentiable: each rank's gradient flows back to the rank that produced it (summed over the ranks'
    identical global losses), so after DDP's gradient averaging a batch-level loss such as CKA gets the
    gradient of the single-process loss at the same global batch. Every rank must hold the same ``n``
    (DistributedSampler with ``drop_last``).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def linear_cka(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Linear CKA between two sets of features of the same batch.

    The kernel form ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K = x_c x_c^T`` and ``L = y_c y_c^T``
    (``x_c, y_c`` column-centred) equals the feature form::

        CKA = <K, L>_F / (||K||_F ||L||_F) = ||y_c^T x_c||_F^2 / (||x_c^T x_c||_F ||y_c^T y_c||_F)

    Whichever is cheaper is computed: the ``n x n`` Grams cost ``O(n^2 (d1 + d2))``, the ``d x d`` products
    ``O(n (d1 d2 + d1^2 + d2^2))``; for a batch smaller than the widths (the usual case: 32 samples, 512-2048
    features) the Grams are many times cheaper, forward and backward.

    Args:
        x: ``[n, d1]`` (or ``[n, ...]``, flattened) features.
        y: ``[n, d2]`` (or ``[n, ...]``); widths may differ, the batch ``n`` must match.
        eps: guard on the denominator: constant features give 0, not NaN.

    Returns:
        a scalar tensor in ``[0, 1]``, in float32 (or float64 when an input is float64).

    Raises:
        ValueError: if the batches differ or ``n < 2`` (CKA is undefined for one sample).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka needs the same batch for both inputs, got {x.shape[0]} and {y.shape[0]}.")
    if x.shape[0] < 2:
        raise ValueError(f"linear_cka needs a batch of at least 2 samples, got {x.shape[0]}.")
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    x = x.reshape(x.shape[0], -1).to(dtype)
    y = y.reshape(y.shape[0], -1).to(dtype)
    x = x - x.mean(dim=0, keepdim=True)
    y = y - y.mean(dim=0, keepdim=True)
    n, d1, d2 = x.shape[0], x.shape[1], y.shape[1]
    if n * (d1 + d2) < d1 * d2 + d1 * d1 + d2 * d2:
        k, l = x @ x.T, y @ y.T  # [n, n] Grams of the centred features
        cross, self_x, self_y = (k * l).sum(), k.square().sum(), l.square().sum()
    else:
        cross = (y.T @ x).square().sum()
        self_x = (x.T @ x).square().sum()
        self_y = (y.T @ y).square().sum()
    # sqrt of a clamped product: finite value and finite gradient even for constant features
    return cross / torch.sqrt((self_x * self_y).clamp_min(eps))


class CKALoss(_Loss):
    """``1 - linear_cka(x, y)``: the CKA distillation term of RD.

    Shapes: ``x`` ``[n, d1]``, ``y`` ``[n, d2]`` -> scalar.
    """

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1.0 - linear_cka(x, y, eps=self.eps)

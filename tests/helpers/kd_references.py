"""NumPy float64 re-derivations of the baseline KD losses, written from the papers' equations.

Nothing here imports monai_rd: layers are recomputed from their weights (taken from the torch modules) with
plain NumPy, so a test compares two independent computations.
"""

import numpy as np


def t2n(t):
    """torch tensor/parameter -> float64 NumPy array."""
    return t.detach().cpu().double().numpy().copy()


def conv1x1(x, w, b=None):
    """x [B, C, H, W], w [O, C, 1, 1] -> [B, O, H, W]."""
    y = np.einsum("bchw,oc->bohw", x, w[:, :, 0, 0])
    return y if b is None else y + b[None, :, None, None]


def conv3x3(x, w, b=None):
    """Cross-correlation with zero padding 1: x [B, C, H, W], w [O, C, 3, 3] -> [B, O, H, W]."""
    bsz, c, h, wd = x.shape
    xp = np.zeros((bsz, c, h + 2, wd + 2))
    xp[:, :, 1:-1, 1:-1] = x
    y = np.zeros((bsz, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            y += np.einsum("bchw,oc->bohw", xp[:, :, i : i + h, j : j + wd], w[:, :, i, j])
    return y if b is None else y + b[None, :, None, None]


def block_mean(x, h, w):
    """Average pooling of [B, C, H, W] to [B, C, h, w] when H, W are multiples of h, w."""
    bsz, c, hh, ww = x.shape
    return x.reshape(bsz, c, h, hh // h, w, ww // w).mean(axis=(3, 5))


def tokens_to_map(x, prefix):
    """[B, N, D] tokens -> [B, D, s, s] after dropping `prefix` leading tokens (row-major grid)."""
    x = x[:, prefix:, :]
    s = int(round(np.sqrt(x.shape[1])))
    return np.transpose(x, (0, 2, 1)).reshape(x.shape[0], x.shape[2], s, s)


def relu(x):
    return np.maximum(x, 0.0)


def softplus(x):
    return np.log1p(np.exp(x))


def l2n(x, axis=1):
    return x / np.linalg.norm(x, axis=axis, keepdims=True)

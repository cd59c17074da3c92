"""Attention Transfer against a hand computation and a NumPy re-derivation of eq. (2)."""

import numpy as np
import pytest
import torch

from monai_rd.losses import ATLoss, attention_map
from tests.helpers.kd_references import block_mean, tokens_to_map


def at_numpy(s, t, beta=1000.0, p=2.0):
    def q(x):
        a = np.sum(np.abs(x) ** p, axis=1).reshape(x.shape[0], -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    return beta * np.mean((q(s) - q(t)) ** 2)


def test_at_by_hand():
    # one sample, one channel, 1 x 2 positions: Q_S = [1, 0], Q_T = [0, 1] (already unit norm);
    # mean of squared differences = (1 + 1) / 2 = 1, times beta = 1000 (RepDistiller's -b 1000 on sum(mean))
    s = torch.tensor([[[[1.0, 0.0]]]])
    t = torch.tensor([[[[0.0, -3.0]]]])  # |A|^2 makes the sign irrelevant, the norm removes the scale
    assert abs(float(ATLoss()(s, t)) - 1000.0) < 1e-4
    assert abs(float(ATLoss(beta=500.0)(s, t)) - 500.0) < 1e-4  # eq. (2)'s beta / 2 reading
    assert float(ATLoss()(s, 7 * s)) == pytest.approx(0.0, abs=1e-6)


def test_at_numpy_heterogeneous_layers():
    rng = np.random.default_rng(0)
    s1, t1 = rng.normal(size=(3, 4, 8, 8)), rng.normal(size=(3, 16, 4, 4))  # widths and resolutions differ
    s2, t2 = rng.normal(size=(3, 6, 3, 3)), rng.normal(size=(3, 10, 12))  # ViT tokens: 1 CLS + 3 x 3
    got = ATLoss(beta=1000.0)([torch.tensor(s1), torch.tensor(s2)], [torch.tensor(t1), torch.tensor(t2)])
    expected = at_numpy(block_mean(s1, 4, 4), t1) + at_numpy(s2, tokens_to_map(t2, 1))
    assert abs(float(got.detach()) - expected) < 1e-9
    q = attention_map(torch.tensor(s1)).numpy()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)


def test_at_refuses_vectors():
    with pytest.raises(ValueError, match=r"spatial features.*\(2, 8\)"):
        ATLoss()(torch.randn(2, 8), torch.randn(2, 4, 2, 2))

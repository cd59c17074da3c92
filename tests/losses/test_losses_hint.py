"""FitNets hint loss against a NumPy re-derivation (regressor applied from its weights)."""

import numpy as np
import pytest
import torch

from monai_rd.losses import HintLoss
from tests.helpers.kd_references import block_mean, conv1x1, t2n, tokens_to_map


def hint_numpy(s, t, w, b):
    return np.mean((conv1x1(s, w, b) - t) ** 2)


def test_hint_same_resolution():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(3, 4, 5, 5)), rng.normal(size=(3, 6, 5, 5))
    loss = HintLoss(4, 6).double()
    reg = loss.regressors[0]
    got = loss(torch.tensor(s), torch.tensor(t))
    assert abs(float(got.detach()) - hint_numpy(s, t, t2n(reg.weight), t2n(reg.bias))) < 1e-10


def test_hint_cnn_student_vit_teacher():
    """Student map [B, 4, 8, 8] vs ViT tokens [B, 1 + 16, 6]: tokens -> 4x4 map, student pooled 8 -> 4."""
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(2, 4, 8, 8)), rng.normal(size=(2, 17, 6))
    loss = HintLoss(4, 6).double()
    reg = loss.regressors[0]
    expected = hint_numpy(block_mean(s, 4, 4), tokens_to_map(t, 1), t2n(reg.weight), t2n(reg.bias))
    got = loss(torch.tensor(s), torch.tensor(t))
    assert abs(float(got.detach()) - expected) < 1e-10


def test_hint_several_pairs_sum_and_vectors():
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    s1, t1 = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 5, 4, 4))
    s2, t2 = rng.normal(size=(2, 7)), rng.normal(size=(2, 9))  # pooled vectors: a linear regressor
    loss = HintLoss([3, 7], [5, 9]).double()
    r1, r2 = loss.regressors
    expected = hint_numpy(s1, t1, t2n(r1.weight), t2n(r1.bias)) + np.mean(
        (s2 @ t2n(r2.weight)[:, :, 0, 0].T + t2n(r2.bias) - t2) ** 2
    )
    got = loss([torch.tensor(s1), torch.tensor(s2)], [torch.tensor(t1), torch.tensor(t2)])
    assert abs(float(got.detach()) - expected) < 1e-10


def test_hint_regressor_reaches_zero_and_errors():
    torch.manual_seed(3)
    s = torch.randn(8, 3, 2, 2)
    m = torch.randn(5, 3)
    t = torch.einsum("bchw,oc->bohw", s, m) + 0.5  # exactly reachable by a 1x1 regressor
    loss = HintLoss(3, 5)
    out = loss(s, t)
    out.backward()
    assert float(out.detach()) > 0.1 and loss.regressors[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        loss.regressors[0].weight.copy_(m[:, :, None, None])
        loss.regressors[0].bias.fill_(0.5)
    assert float(loss(s, t).detach()) < 1e-10
    with pytest.raises(ValueError, match=r"3 -> 5 channels.*\(8, 4, 2, 2\)"):
        loss(torch.randn(8, 4, 2, 2), t)
    with pytest.raises(ValueError, match="1 layer pair"):
        loss([s, s], [t, t])

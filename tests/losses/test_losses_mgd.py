"""MGD against a NumPy re-derivation (mask, alignment, generation block, summed squared error / B)."""

import numpy as np
import pytest
import torch

from monai_rd.losses import MGDLoss
from tests.helpers.kd_references import block_mean, conv1x1, conv3x3, relu, t2n, tokens_to_map


def mgd_numpy(s, t, mask, loss, alpha):
    a = conv1x1(s, t2n(loss.align.weight), t2n(loss.align.bias)) if hasattr(loss.align, "weight") else s
    g1, g2 = loss.generation[0], loss.generation[2]
    gen = conv3x3(relu(conv3x3(a * mask, t2n(g1.weight), t2n(g1.bias))), t2n(g2.weight), t2n(g2.bias))
    return alpha * np.sum((gen - t) ** 2) / s.shape[0]


def test_mgd_numpy_with_given_mask():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 5, 4, 4))
    mask = (rng.random(size=(2, 1, 4, 4)) > 0.5).astype(np.float64)
    loss = MGDLoss(3, 5, alpha=0.1, mask_mode="spatial").double()
    got = loss(torch.tensor(s), torch.tensor(t), mask=torch.tensor(mask))
    assert abs(float(got.detach()) - mgd_numpy(s, t, mask, loss, 0.1)) < 1e-9


def test_mgd_channel_mask_numpy():
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 5, 4, 4))
    loss = MGDLoss(3, 5, mask_mode="channel", mask_ratio=0.5, seed=4).double()
    mask = MGDLoss(3, 5, mask_mode="channel", mask_ratio=0.5, seed=4).random_mask(2, 4, 4).double().numpy()
    assert mask.shape == (2, 5, 1, 1)
    got = loss(torch.tensor(s), torch.tensor(t))
    assert abs(float(got.detach()) - mgd_numpy(s, t, mask, loss, 7e-5)) < 1e-12
    with pytest.raises(ValueError, match="mask_mode"):
        MGDLoss(3, 5, mask_mode="token")


def test_mgd_seeded_mask_heterogeneous_and_same_width():
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(2, 6, 8, 8)), rng.normal(size=(2, 1 + 16, 6))  # same width: no align conv
    a, b = MGDLoss(6, 6, seed=5).double(), MGDLoss(6, 6, seed=5).double()
    b.load_state_dict(a.state_dict())
    assert isinstance(a.align, torch.nn.Identity)
    ga = a(torch.tensor(s), torch.tensor(t))
    assert float(ga.detach()) == float(b(torch.tensor(s), torch.tensor(t)).detach())  # same seed, same mask
    mask = MGDLoss(6, 6, seed=5).random_mask(2, 4, 4).double().numpy()
    expected = mgd_numpy(block_mean(s, 4, 4), tokens_to_map(t, 1), mask, a, 7e-5)
    assert abs(float(ga.detach()) - expected) < 1e-12


def test_mgd_mask_ratio_and_errors():
    assert MGDLoss(2, 2).mask_mode == "channel"  # the authors' classification code (yzd-v/MGD cls/)
    m = MGDLoss(2, 2, mask_ratio=0.15, seed=0, mask_mode="spatial").random_mask(64, 32, 32)
    assert set(m.unique().tolist()) == {0.0, 1.0}
    assert abs(float(1 - m.mean()) - 0.15) < 0.01
    loss = MGDLoss(3, 5)
    loss(torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)).backward()
    assert loss.generation[0].weight.grad is not None and loss.align.weight.grad is not None
    with pytest.raises(ValueError, match=r"spatial.*\(2, 3\)"):
        loss(torch.randn(2, 3), torch.randn(2, 5, 4, 4))
    with pytest.raises(ValueError, match=r"channel mask must be \(2, 5, 1, 1\)"):
        loss(torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4), mask=torch.ones(2, 1, 4, 4))

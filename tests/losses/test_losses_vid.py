"""VID against a NumPy re-derivation of the Gaussian negative log-likelihood."""

import math

import numpy as np
import pytest
import torch

from monai_rd.losses import VIDLoss
from tests.helpers.kd_references import block_mean, conv1x1, relu, softplus, t2n, tokens_to_map


def vid_numpy(s, t, ws, alpha, eps=1e-5):
    mu = conv1x1(relu(conv1x1(relu(conv1x1(s, ws[0])), ws[1])), ws[2])
    var = (softplus(alpha) + eps)[None, :, None, None]
    # -log N(t; mu, var) without the constant log sqrt(2 pi): log sigma + (t - mu)^2 / (2 var)
    return np.mean(0.5 * np.log(var) + (t - mu) ** 2 / (2 * var))


def _weights(loss):
    return [t2n(loss.regressor[i].weight) for i in (0, 2, 4)]


def test_vid_initial_variance_and_value():
    torch.manual_seed(0)
    loss = VIDLoss(3, 5, init_var=5.0).double()
    np.testing.assert_allclose(t2n(loss.variance()), 5.0, rtol=1e-6)  # alpha is initialised in float32
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 5, 4, 4))
    got = loss(torch.tensor(s), torch.tensor(t))
    assert abs(float(got.detach()) - vid_numpy(s, t, _weights(loss), t2n(loss.alpha))) < 1e-10


def test_vid_learned_variance_heterogeneous():
    torch.manual_seed(1)
    loss = VIDLoss(4, 6, mid_channels=3).double()
    with torch.no_grad():
        loss.alpha.copy_(torch.linspace(-2, 3, 6))
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(2, 4, 8, 8)), rng.normal(size=(2, 1 + 16, 6))
    got = loss(torch.tensor(s), torch.tensor(t))
    expected = vid_numpy(block_mean(s, 4, 4), tokens_to_map(t, 1), _weights(loss), t2n(loss.alpha))
    assert abs(float(got.detach()) - expected) < 1e-10


def test_vid_zero_residual_is_half_log_variance():
    loss = VIDLoss(2, 2).double()
    for m in loss.regressor:
        if hasattr(m, "weight"):
            torch.nn.init.zeros_(m.weight)
    x = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    assert abs(float(loss(x, x).detach()) - 0.5 * math.log(5.0)) < 1e-6


def test_vid_gradient_reaches_variance_and_errors():
    loss = VIDLoss(3, 5)
    loss(torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)).backward()
    assert loss.alpha.grad is not None and loss.regressor[0].weight.grad is not None
    with pytest.raises(ValueError, match=r"3 -> 5 channels"):
        loss(torch.randn(2, 3, 4, 4), torch.randn(2, 6, 4, 4))
    with pytest.raises(ValueError, match="init_var"):
        VIDLoss(3, 5, init_var=0.0)


def test_layerwise_vid_sums_one_vid_per_pair():
    """RepDistiller distils every stage with one VID (own regressor and variances) per pair, values summed: NumPy
    float64 per pair, the larger map average-pooled as in the single-pair loss."""
    from monai_rd.losses import LayerwiseVIDLoss, build_kd_loss

    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    s = [rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(2, 4, 4, 4))]
    t = [rng.normal(size=(2, 5, 4, 4)), rng.normal(size=(2, 6, 2, 2))]
    loss = build_kd_loss("vid", [(3, 8, 8), (4, 4, 4)], [(5, 4, 4), (6, 2, 2)]).double()
    assert isinstance(loss, LayerwiseVIDLoss) and len(loss.pairs) == 2
    for pair in loss.pairs:  # distinct learned variances per pair
        torch.nn.init.normal_(pair.alpha)
    got = loss([torch.tensor(x) for x in s], [torch.tensor(x) for x in t])
    expected = sum(
        vid_numpy(block_mean(si, *ti.shape[2:]), ti, _weights(pair), t2n(pair.alpha))
        for si, ti, pair in zip(s, t, loss.pairs)
    )
    assert abs(float(got.detach()) - expected) < 1e-10
    with pytest.raises(ValueError, match="built for 2 layer pairs"):
        loss([torch.tensor(s[0])], [torch.tensor(t[0])])

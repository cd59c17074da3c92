"""KDLoss against hand computations."""

import math

import numpy as np
import pytest
import torch

from monai_rd.losses import KDLoss


def test_softmax_kd_by_hand():
    # one sample, two classes, tau = 2: p = softmax(z / 2)
    zs, zt = [0.0, 2.0], [2.0, 0.0]
    ps = [math.exp(0) / (math.exp(0) + math.exp(1)), math.exp(1) / (math.exp(0) + math.exp(1))]
    pt = [ps[1], ps[0]]
    kl = sum(t * (math.log(t) - math.log(s)) for t, s in zip(pt, ps))
    expected = 4.0 * kl  # tau^2
    got = KDLoss(temperature=2.0)(torch.tensor([zs]), torch.tensor([zt]))
    assert abs(float(got) - expected) < 1e-6
    # 2 * (1 - 2 sigma(1)) * (0 - 1) ... closed form: KL = (2 s1 - 1) * 1 with s1 = sigmoid(1); times 4
    s1 = 1 / (1 + math.exp(-1))
    assert abs(expected - 4.0 * (2 * s1 - 1)) < 1e-12


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("tau", [1.0, 4.0, 7.5])
def test_softmax_kd_numpy(tau):
    rng = np.random.default_rng(int(tau * 10))
    zs, zt = rng.normal(size=(5, 7)) * 3, rng.normal(size=(5, 7)) * 3
    ps, pt = softmax(zs / tau), softmax(zt / tau)
    expected = tau**2 * np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), axis=1))
    got = KDLoss(temperature=tau)(torch.tensor(zs), torch.tensor(zt))
    assert abs(float(got) - expected) < 1e-5


def test_equal_logits_give_zero_and_gradient_flows_to_student():
    z = torch.randn(4, 3)
    assert abs(float(KDLoss()(z, z))) < 1e-7
    zs = torch.randn(4, 3, requires_grad=True)
    KDLoss()(zs, z).backward()
    assert zs.grad.abs().sum() > 0


def test_sigmoid_kd_numpy():
    rng = np.random.default_rng(3)
    tau = 4.0
    zs, zt = rng.normal(size=(6, 14)) * 5, rng.normal(size=(6, 14)) * 5
    ps, pt = 1 / (1 + np.exp(-zs / tau)), 1 / (1 + np.exp(-zt / tau))
    kl = pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))
    expected = tau**2 * kl.sum(axis=1).mean()
    got = KDLoss(temperature=tau, multi_label=True)(torch.tensor(zs), torch.tensor(zt))
    assert abs(float(got) - expected) < 1e-5
    # saturated logits stay finite
    big = torch.tensor([[200.0, -200.0]])
    assert torch.isfinite(KDLoss(multi_label=True)(big, -big))


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        KDLoss(temperature=0)
    with pytest.raises(ValueError, match="one shape"):
        KDLoss()(torch.randn(2, 3), torch.randn(2, 4))

"""SemCKD against a NumPy re-derivation of the attention-weighted cross-layer loss."""

import numpy as np
import pytest
import torch

from monai_rd.losses import SemCKDLoss
from tests.helpers.kd_references import block_mean, conv1x1, conv3x3, l2n, relu, t2n, tokens_to_map


def embed_numpy(x, head):
    h = relu(x @ t2n(head.fc1.weight).T + t2n(head.fc1.bias))
    return l2n(h @ t2n(head.fc2.weight).T + t2n(head.fc2.bias))


def bn_eval_numpy(x, bn):
    mean, var = t2n(bn.running_mean), t2n(bn.running_var)
    g, b = t2n(bn.weight), t2n(bn.bias)
    return (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + bn.eps) * g[None, :, None, None] + b[
        None, :, None, None
    ]


def proj_numpy(x, p):
    """1x1 conv -> BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 1x1 conv (the authors' AAEmbed layout)."""
    y = relu(bn_eval_numpy(conv1x1(x, t2n(p[0].weight)), p[1]))
    y = relu(bn_eval_numpy(conv3x3(y, t2n(p[3].weight)), p[4]))
    return conv1x1(y, t2n(p[6].weight))


def pool_pair(s, t):
    h, w = min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3])
    return block_mean(s, h, w), block_mean(t, h, w)


def semckd_numpy(fs, ft, loss):
    b = fs[0].shape[0]
    sim = [x.reshape(b, -1) @ x.reshape(b, -1).T for x in fs]
    simt = [x.reshape(b, -1) @ x.reshape(b, -1).T for x in ft]
    q = np.stack([embed_numpy(a, h) for a, h in zip(sim, loss.query)], axis=1)
    k = np.stack([embed_numpy(a, h) for a, h in zip(simt, loss.key)], axis=1)
    e = np.einsum("bsd,btd->bst", q, k)
    att = np.exp(e - e.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    total = 0.0
    for i, s in enumerate(fs):
        for j, t in enumerate(ft):
            sp, tp = pool_pair(s, t)
            d = ((proj_numpy(sp, loss.proj[i][j]) - tp) ** 2).reshape(b, -1).mean(1)
            total += np.sum(att[:, i, j] * d)
    return total / (b * len(fs)), att


def test_semckd_numpy_heterogeneous():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    b = 4
    fs = [rng.normal(size=(b, 3, 8, 8)), rng.normal(size=(b, 5, 4, 4))]
    ft = [rng.normal(size=(b, 6, 4, 4)), rng.normal(size=(b, 1 + 4, 8)), rng.normal(size=(b, 7, 2, 2))]
    loss = SemCKDLoss([3, 5], [6, 8, 7], batch_size=b, factor=2).double()
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in loss.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    loss.eval()
    got = loss([torch.tensor(x) for x in fs], [torch.tensor(x) for x in ft])
    ft_maps = [ft[0], tokens_to_map(ft[1], 1), ft[2]]
    expected, att = semckd_numpy(fs, ft_maps, loss)
    assert abs(float(got.detach()) - expected) < 1e-9
    np.testing.assert_allclose(t2n(loss.last_attention), att, atol=1e-12)
    np.testing.assert_allclose(att.sum(-1), 1.0)
    assert att.shape == (b, 2, 3)


def test_semckd_trains_and_refuses_other_batch_sizes():
    loss = SemCKDLoss([3], [4, 6], batch_size=4)
    fs, ft = [torch.randn(4, 3, 4, 4)], [torch.randn(4, 4, 4, 4), torch.randn(4, 6, 2, 2)]
    loss(fs, ft).backward()
    assert loss.query[0].fc1.weight.grad is not None and loss.proj[0][1][0].weight.grad is not None
    assert loss.proj[0][1][3].weight.shape == (12, 12, 3, 3)  # hidden width 2 * C_T
    with pytest.raises(ValueError, match="batch size 4.*drop_last"):
        loss([torch.randn(3, 3, 4, 4)], [torch.randn(3, 4, 4, 4), torch.randn(3, 6, 2, 2)])
    with pytest.raises(ValueError, match=r"student channels \[3\]"):
        loss([torch.randn(4, 5, 4, 4)], ft)

"""NORM (N-to-one representation matching) against a NumPy re-derivation."""

import numpy as np
import pytest
import torch

from monai_rd.losses import NORMLoss
from tests.kd_references import block_mean, conv1x1, t2n


def norm_numpy(s, t, loss, n):
    e = conv1x1(s, t2n(loss.expand.weight), t2n(loss.expand.bias))
    ct = t.shape[1]
    segments = [e[:, i * ct : (i + 1) * ct] for i in range(n)]  # sequential, non-overlapping
    return np.sum([np.mean((seg - t) ** 2) for seg in segments])


@pytest.mark.parametrize("n", [1, 3])
def test_norm_numpy(n):
    torch.manual_seed(n)
    rng = np.random.default_rng(n)
    s, t = rng.normal(size=(2, 4, 8, 8)), rng.normal(size=(2, 5, 4, 4))
    loss = NORMLoss(4, 5, num_segments=n).double()
    got = loss(torch.tensor(s), torch.tensor(t))
    sp = block_mean(s, 4, 4)
    assert abs(float(got.detach()) - norm_numpy(sp, t, loss, n)) < 1e-10
    # the authors' form: N * MSE(expanded student, teacher tiled N times along channels)
    e = conv1x1(sp, t2n(loss.expand.weight), t2n(loss.expand.bias))
    assert abs(float(got.detach()) - n * np.mean((e - np.tile(t, (1, n, 1, 1))) ** 2)) < 1e-10


def test_norm_vectors_transform_and_errors():
    loss = NORMLoss(6, 3, num_segments=2)
    contracted, expanded = loss.transform(torch.randn(2, 6, 4, 4))
    assert contracted.shape == (2, 6, 4, 4) and expanded.shape == (2, 6, 4, 4)
    out = loss(torch.randn(2, 6), torch.randn(2, 3))  # penultimate vectors
    out.backward()
    assert loss.expand.weight.grad is not None
    with pytest.raises(ValueError, match=r"6 -> 3 channels"):
        loss(torch.randn(2, 6), torch.randn(2, 4))

"""linear_cka / CKALoss against an independent NumPy float64 kernel-form implementation."""

import numpy as np
import pytest
import torch

from monai_rd.losses import CKALoss, linear_cka
from tests.helpers.references import cka_kernel_numpy


@pytest.mark.parametrize("n,d1,d2", [(2, 3, 5), (8, 16, 4), (32, 512, 128), (17, 7, 7), (64, 3, 300)])
def test_matches_numpy_float64(n, d1, d2):
    rng = np.random.default_rng(n * 1000 + d1 + d2)
    x = rng.normal(size=(n, d1))
    y = x[:, : min(d1, d2)] @ rng.normal(size=(min(d1, d2), d2)) + rng.normal(size=(n, d2))
    expected = cka_kernel_numpy(x, y)
    got = linear_cka(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    assert got.dtype == torch.float32
    assert abs(float(got) - expected) < 1e-5
    assert 0.0 <= float(got) <= 1.0 + 1e-6
    got64 = linear_cka(torch.tensor(x), torch.tensor(y))
    assert got64.dtype == torch.float64 and abs(float(got64) - expected) < 1e-12


def test_low_precision_inputs_are_computed_in_float32():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 8)), rng.normal(size=(16, 6))
    got = linear_cka(torch.tensor(x, dtype=torch.bfloat16), torch.tensor(y, dtype=torch.float16))
    assert got.dtype == torch.float32
    ref = cka_kernel_numpy(
        torch.tensor(x, dtype=torch.bfloat16).double().numpy(), torch.tensor(y, dtype=torch.float16).double().numpy()
    )
    assert abs(float(got) - ref) < 1e-5


def test_identity_and_spatial_inputs():
    x = torch.randn(10, 4, 3, 3)
    assert abs(float(linear_cka(x, x)) - 1.0) < 1e-5
    assert abs(float(linear_cka(x, x.flatten(1))) - 1.0) < 1e-5


def test_invariant_to_orthogonal_transform_and_isotropic_scaling():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(20, 12)), dtype=torch.float64)
    y = torch.tensor(rng.normal(size=(20, 9)), dtype=torch.float64) + x[:, :9]
    q_x, _ = torch.linalg.qr(torch.tensor(rng.normal(size=(12, 12)), dtype=torch.float64))
    q_y, _ = torch.linalg.qr(torch.tensor(rng.normal(size=(9, 9)), dtype=torch.float64))
    base = float(linear_cka(x, y))
    assert abs(float(linear_cka(x @ q_x, y)) - base) < 1e-10
    assert abs(float(linear_cka(x, y @ q_y)) - base) < 1e-10
    assert abs(float(linear_cka(3.7 * x, y)) - base) < 1e-10
    assert abs(float(linear_cka(x, 0.01 * y)) - base) < 1e-10
    # but not invariant to arbitrary (non-isotropic) linear maps
    assert abs(float(linear_cka(x * torch.linspace(0.1, 10, 12, dtype=torch.float64), y)) - base) > 1e-3


def test_batch_of_one_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2"):
        linear_cka(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="same batch"):
        linear_cka(torch.randn(3, 4), torch.randn(4, 4))


def test_constant_features_give_finite_value_and_gradient():
    x = torch.ones(6, 5, requires_grad=True)
    y = torch.randn(6, 3, requires_grad=True)
    value = linear_cka(x, y)
    assert torch.isfinite(value) and float(value) == 0.0
    value.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    both = linear_cka(torch.zeros(4, 2), torch.zeros(4, 2))
    assert torch.isfinite(both)


def test_cka_loss_is_one_minus_cka_and_differentiable():
    x = torch.randn(8, 6, requires_grad=True)
    y = torch.randn(8, 4)
    loss = CKALoss()(x, y)
    assert abs(float(loss) - (1 - cka_kernel_numpy(x.detach().numpy(), y.numpy()))) < 1e-5
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("n,d1,d2", [(4, 576, 2048), (64, 3, 5)])  # Gram form / feature form chosen inside
def test_gradient_matches_the_feature_form_in_float64(n, d1, d2):
    """Whichever form ``linear_cka`` computes, its gradient is the feature form's (written out here)."""

    def feature_form(x, y):
        x, y = x - x.mean(0), y - y.mean(0)
        return (y.T @ x).square().sum() / ((x.T @ x).square().sum() * (y.T @ y).square().sum()).sqrt()

    g = torch.Generator().manual_seed(n + d1)
    x = torch.randn(n, d1, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(n, d2, generator=g, dtype=torch.float64, requires_grad=True)
    got = torch.autograd.grad(linear_cka(x, y), (x, y))
    want = torch.autograd.grad(feature_form(x, y), (x, y))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)

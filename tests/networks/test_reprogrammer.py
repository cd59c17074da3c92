"""The bottleneck reprogrammer ``g``: parameter count by hand, budget rule, and the RD wiring it must keep."""

from __future__ import annotations

import pytest
import torch

from monai_rd.losses import RDLoss
from monai_rd.networks import RDNet, Reprogrammer, StudentClassifier, bottleneck_width, build_teacher
from monai_rd.networks.blocks.reprogrammer import count_parameters


def _params_by_hand(d_t: int, d_s: int, p: int | None) -> int:
    """Two-block vector ``g`` counted layer by layer (bias-free linears; BatchNorm has weight + bias)."""
    if p is None:  # block(d_T -> d_S) with projection shortcut, then block(d_S -> d_S) with identity
        first = d_t * d_s + 2 * d_s + d_s * d_s + 2 * d_s + d_t * d_s + 2 * d_s
        return first + 2 * (d_s * d_s + 2 * d_s)
    projection = d_t * p + 2 * p
    block1 = 2 * (p * p + 2 * p)  # p -> p, identity shortcut
    block2 = p * p + 2 * p + p * d_s + 2 * d_s + p * d_s + 2 * d_s  # p -> d_S, hidden p, projection shortcut
    return projection + block1 + block2


@pytest.mark.parametrize("p", [None, 16, 80, 512])
def test_parameter_count_matches_hand_count(p):
    assert count_parameters(Reprogrammer((2048,), 1024, num_blocks=2, width=p)) == _params_by_hand(2048, 1024, p)


def test_budget_picks_the_widest_bottleneck_that_fits():
    d_t, d_s, budget = 2048, 1024, 380_000
    p = bottleneck_width((d_t,), d_s, budget)
    assert p % 16 == 0 and _params_by_hand(d_t, d_s, p) <= budget < _params_by_hand(d_t, d_s, p + 16)
    # a budget the full-width g fits in keeps the paper's g; a tiny one still leaves the minimum width
    assert bottleneck_width((d_t,), d_s, _params_by_hand(d_t, d_s, None)) is None
    assert bottleneck_width((d_t,), d_s, 10) == 16
    with pytest.raises(ValueError, match="max_params"):
        bottleneck_width((d_t,), d_s, 0)
    with pytest.raises(ValueError, match="width"):
        Reprogrammer((d_t,), d_s, width=0)


def test_rdnet_default_bounds_g_by_the_student():
    student = StudentClassifier("mobilenet_v3_small", num_classes=3)
    net = RDNet(None, student, teacher_feature_shape=(2048,))
    assert net.reprogrammer.width is not None
    assert count_parameters(net.reprogrammer) <= 0.25 * count_parameters(student)
    full = RDNet(None, student, teacher_feature_shape=(2048,), reprogrammer_budget=None)
    assert full.reprogrammer.width is None and count_parameters(full.reprogrammer) == _params_by_hand(2048, 1024, None)
    assert RDNet(None, student, teacher_feature_shape=(2048,), reprogrammer_width=48).reprogrammer.width == 48
    with pytest.raises(ValueError, match="reprogrammer_budget"):
        RDNet(None, student, teacher_feature_shape=(2048,), reprogrammer_budget=0)


@pytest.mark.parametrize("shape", [(2048,), (64, 4, 4)])
def test_bottleneck_shapes(shape):
    g = Reprogrammer(shape, 96, num_blocks=3, width=16)
    assert g(torch.randn(5, *shape)).shape == (5, 96)
    assert g.projection[0].weight.shape[:2] == (16, shape[0])


def test_bottleneck_keeps_the_rd_wiring():
    """With the default (bottleneck) g: gradients reach g (its projection too), S and h, never T."""
    torch.manual_seed(0)
    net = RDNet(build_teacher("resnet50"), StudentClassifier("mobilenet_v3_small", num_classes=3))
    assert net.reprogrammer.width is not None
    net.train()
    teacher_state = {k: v.clone() for k, v in net.teacher.state_dict().items()}
    out = net(torch.rand(4, 3, 32, 32))
    assert out["f_T"].shape == out["f_S"].shape == (4, 1024) and out["z_T"].shape == out["z_S"].shape == (4, 3)
    RDLoss()(out, torch.tensor([0, 1, 2, 0]))["loss"].backward()
    assert all(p.grad is None for p in net.teacher.parameters())
    for part in (net.reprogrammer.projection, net.reprogrammer.blocks, net.student.backbone, net.student.head):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(torch.equal(v, teacher_state[k]) for k, v in net.teacher.state_dict().items())

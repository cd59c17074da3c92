"""RDLoss: the weighted sum of its terms, each checked independently."""

import numpy as np
import torch

from monai_rd.losses import RDLoss, linear_cka
from tests.helpers.references import cka_kernel_numpy


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def make_outputs(b=6, c=3, d=5, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(b, c if k.startswith("z") else d, generator=g, dtype=torch.float64).requires_grad_(requires_grad)
        for k in ("z_T", "z_S", "f_T", "f_S")
    }


def test_terms_and_total_match_numpy():
    out = make_outputs()
    y = torch.tensor([0, 2, 1, 1, 0, 2])
    loss = RDLoss(ce_teacher=0.5, ce_student=2.0, kd=0.3, cka=0.7, temperature=4.0)
    res = loss(out, y)
    zt, zs = out["z_T"].numpy(), out["z_S"].numpy()
    ce_t = -np.mean(log_softmax(zt)[np.arange(6), y.numpy()])
    ce_s = -np.mean(log_softmax(zs)[np.arange(6), y.numpy()])
    pt_log, ps_log = log_softmax(zt / 4), log_softmax(zs / 4)
    kd = 16 * np.mean(np.sum(np.exp(pt_log) * (pt_log - ps_log), axis=1))
    cka = cka_kernel_numpy(out["f_T"].numpy(), out["f_S"].numpy())
    assert np.isclose(float(res["ce_teacher"]), ce_t, atol=1e-6)
    assert np.isclose(float(res["ce_student"]), ce_s, atol=1e-6)
    assert np.isclose(float(res["kd"]), kd, atol=1e-5)
    assert np.isclose(float(res["cka"]), 1 - cka, atol=1e-6)
    assert np.isclose(float(res["cka_value"]), cka, atol=1e-6)
    assert np.isclose(float(res["loss"]), 0.5 * ce_t + 2.0 * ce_s + 0.3 * kd + 0.7 * (1 - cka), atol=1e-5)


def test_weights_are_changeable_and_zero_weight_drops_the_term():
    out = make_outputs(seed=1)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = RDLoss()
    full = loss(out, y)
    loss.weights["kd"] = 0.0
    loss.weights["cka"] = 0.0
    partial = loss(out, y)
    assert np.isclose(float(partial["loss"]), float(full["ce_teacher"] + full["ce_student"]), atol=1e-6)


def test_multi_label_uses_bce():
    out = make_outputs(c=4, seed=2)
    y = torch.tensor(np.random.default_rng(0).integers(0, 2, size=(6, 4)), dtype=torch.float64)
    res = RDLoss(multi_label=True)(out, y)
    z = out["z_S"].numpy()
    p = 1 / (1 + np.exp(-z))
    bce = -np.mean(y.numpy() * np.log(p) + (1 - y.numpy()) * np.log(1 - p))
    assert np.isclose(float(res["ce_student"]), bce, atol=1e-6)


def test_detach_teacher_stops_distillation_gradients_into_teacher_branch():
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    for detach, expect_grad in ((False, True), (True, False)):
        out = make_outputs(seed=3, requires_grad=True)
        loss = RDLoss(ce_teacher=0.0, ce_student=0.0, kd=1.0, cka=1.0, detach_teacher=detach)
        loss(out, y)["loss"].backward()
        teacher_grad = out["z_T"].grad is not None and out["z_T"].grad.abs().sum() > 0
        assert teacher_grad == expect_grad
        assert out["z_S"].grad.abs().sum() > 0 and out["f_S"].grad.abs().sum() > 0


def test_cka_value_agrees_with_linear_cka():
    out = make_outputs(b=9, d=11, seed=4)
    res = RDLoss()(out, torch.zeros(9, dtype=torch.long))
    assert torch.allclose(res["cka_value"], linear_cka(out["f_T"], out["f_S"]))


def test_one_default_weight_schedule_and_one_supervised_term():
    """The paper's schedule is written once (rd_default_weights) and is what the handler and the RD recipe use."""
    import torch.nn.functional as F

    from monai_rd.handlers import LossWeightSchedule
    from monai_rd.losses import rd_default_weights, supervised_loss
    from monai_rd.methods.registry import _ablate

    expected = {
        "ce_teacher": 1.0,
        "ce_student": 1.0,
        "kd": {"start": 1.0, "end": 0.0, "schedule": "linear"},
        "cka": {"start": 1.0, "end": 0.0, "schedule": "linear"},
    }  # DESIGN.md section 1, by hand
    assert rd_default_weights() == expected
    rd_default_weights()["kd"]["end"] = 0.5  # a caller's edit never leaks into the next default
    assert rd_default_weights() == expected
    handler = LossWeightSchedule()
    assert {k: (s.start, s.end, s.schedule) for k, s in handler.schedules.items()} == {
        "ce_teacher": (1.0, 1.0, "constant"),
        "ce_student": (1.0, 1.0, "constant"),
        "kd": (1.0, 0.0, "linear"),
        "cka": (1.0, 0.0, "linear"),
    }
    assert _ablate(None, True, True) == expected
    logits, target = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    torch.testing.assert_close(supervised_loss(logits, target), F.cross_entropy(logits, target))
    torch.testing.assert_close(RDLoss().supervised(logits, target), F.cross_entropy(logits, target))

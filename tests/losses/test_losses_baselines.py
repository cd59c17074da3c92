"""KD_LOSSES: every baseline builds by name from feature shapes, runs on heterogeneous pairs, refuses bad ones."""

import pytest
import torch

from monai_rd.losses import KD_LOSSES, KDLoss, build_kd_loss

METHODS = ["at", "crd", "hint", "hinton_kd", "mgd", "norm", "semckd", "vid"]

# a CNN student map and ViT-style teacher tokens (1 CLS + 4 x 4 patches), different widths and resolutions
STUDENT, TEACHER = (8, 8, 8), (17, 12)
OPTIONS = {"crd": {"num_data": 32, "feat_dim": 8}, "semckd": {"batch_size": 4}}


def test_registry_names():
    assert KD_LOSSES.names() == METHODS


@pytest.mark.parametrize("name", [m for m in METHODS if m != "hinton_kd"])
def test_builds_and_trains_on_cnn_student_vit_teacher(name):
    torch.manual_seed(0)
    loss = build_kd_loss(name, STUDENT, TEACHER, **OPTIONS.get(name, {}))
    s = torch.randn(4, *STUDENT, requires_grad=True)
    t = torch.randn(4, *TEACHER)
    args = (torch.arange(4),) if name == "crd" else ()
    out = loss(s, t, *args)
    assert out.ndim == 0 and torch.isfinite(out)
    out.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    trainable = [p for p in loss.parameters() if p.requires_grad]
    assert (len(trainable) == 0) == (name == "at")  # AT has no extra module; every other method has one


def test_vector_teacher_for_vector_methods():
    # a ViT teacher's pooled [B, D] embedding with a CNN student's map: hint/vid/norm/crd accept it
    for name in ["hint", "vid", "norm", "crd"]:
        loss = build_kd_loss(name, (8, 4, 4), (12,), **OPTIONS.get(name, {}))
        args = (torch.arange(2),) if name == "crd" else ()
        s = torch.randn(2, 8) if name != "crd" else torch.randn(2, 8, 4, 4)
        assert torch.isfinite(loss(s, torch.randn(2, 12), *args))


def test_hinton_kd_reuses_kdloss():
    loss = build_kd_loss("hinton_kd", (3,), (3,), temperature=2.0)
    assert type(loss) is KDLoss and loss.temperature == 2.0
    with pytest.raises(ValueError, match="logits of one shape"):
        build_kd_loss("hinton_kd", (3,), (1000,))


def test_refusals_name_the_shapes():
    with pytest.raises(ValueError, match=r"spatial.*\(12,\)"):
        build_kd_loss("at", STUDENT, (12,))
    with pytest.raises(ValueError, match=r"\(50, 12\).*square"):
        build_kd_loss("hint", STUDENT, (50, 12), num_prefix_tokens=0)
    with pytest.raises(ValueError, match="mgd masks spatial"):
        build_kd_loss("mgd", (8,), TEACHER)
    with pytest.raises(ValueError, match="num_data"):
        build_kd_loss("crd", STUDENT, TEACHER)
    with pytest.raises(ValueError, match="batch_size"):
        build_kd_loss("semckd", STUDENT, TEACHER)
    with pytest.raises(ValueError, match="one to one, got 2 student and 1 teacher"):
        build_kd_loss("vid", [STUDENT, STUDENT], [TEACHER])
    with pytest.raises(KeyError, match="Available: at, crd"):
        build_kd_loss("fitnet", STUDENT, TEACHER)


def test_multi_layer_builders():
    s_shapes, t_shapes = [(4, 16, 16), (8, 8, 8)], [(6, 8, 8), (17, 12)]
    hint = build_kd_loss("hint", s_shapes, t_shapes)
    sem = build_kd_loss("semckd", s_shapes, t_shapes, batch_size=2)
    fs = [torch.randn(2, *x) for x in s_shapes]
    ft = [torch.randn(2, *x) for x in t_shapes]
    assert torch.isfinite(hint(fs, ft)) and torch.isfinite(sem(fs, ft))
    assert sem.last_attention.shape == (2, 2, 2)

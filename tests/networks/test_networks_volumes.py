"""3D students by name, ``g`` on every teacher feature layout, and RDNet wired on volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_rd.networks import RDNet, Reprogrammer, StudentClassifier, build_teacher
from monai_rd.networks.blocks.reprogrammer import AttentionPool


@pytest.mark.parametrize(
    "name, width",
    [
        ("monai:resnet10", 512),
        ("monai:resnet18", 512),
        ("monai:DenseNet121", 1024),
        ("monai:EfficientNetBN", 1280),
    ],  # fmt: skip
)
def test_3d_students_by_name(name, width):
    torch.manual_seed(0)
    student = StudentClassifier(name, num_classes=3, spatial_dims=3)
    assert student.feature_dim == width
    x = torch.rand(2, 1, 32, 32, 32)
    out = student(x)
    assert out.shape == (2, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in student.head.parameters())
    # normalisation is the identity for volumes (the CT preset windows to [0, 1]); the head sees the backbone's features
    student.eval()
    with torch.no_grad():
        torch.testing.assert_close(student(x), student.head(student.backbone(x)))


def test_3d_student_refuses_a_2d_name():
    with pytest.raises(ValueError, match="monai:<Net>"):
        StudentClassifier("resnet18", num_classes=2, spatial_dims=3)


@pytest.mark.parametrize("shape", [(64,), (5, 64), (64, 4, 4), (64, 2, 3, 4)])
def test_reprogrammer_handles_every_layout(shape):
    g = Reprogrammer(shape, 16, num_blocks=2)
    f = torch.randn(3, *shape, requires_grad=True)
    out = g(f)
    assert out.shape == (3, 16)
    out.sum().backward()
    assert f.grad is not None and all(p.grad is not None for p in g.parameters())


def test_attention_pool_matches_numpy():
    torch.manual_seed(0)
    pool = AttentionPool(6, hidden=4).double()
    f = torch.randn(2, 5, 6, dtype=torch.float64)
    V, bv = pool.score[0].weight.detach().numpy(), pool.score[0].bias.detach().numpy()
    w, bw = pool.score[2].weight.detach().numpy(), pool.score[2].bias.detach().numpy()
    x = f.numpy()
    s = (np.tanh(x @ V.T + bv) @ w.T + bw)[..., 0]  # [B, S]
    a = np.exp(s - s.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    expected = (a[..., None] * x).sum(1)
    np.testing.assert_allclose(pool(f).detach().numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("teacher_name, options", [
    ("medicalnet_resnet10", {"pooled": False}),
    ("slicewise:torchvision:resnet18", {"input_size": 32, "pool": "none", "num_slices": 32}),
])  # fmt: skip
def test_rdnet_on_volumes(teacher_name, options):
    torch.manual_seed(0)
    teacher = build_teacher(teacher_name, **options)
    student = StudentClassifier("monai:resnet10", num_classes=2, spatial_dims=3)
    net = RDNet(teacher, student, num_blocks=1)
    x = torch.rand(2, 1, 32, 32, 32)
    out = net(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "f_T": (2, 512),
        "f_S": (2, 512),
        "z_T": (2, 2),
        "z_S": (2, 2),
    }
    (out["z_T"].sum() + out["z_S"].sum()).backward()
    assert not any(p.requires_grad for p in teacher.parameters())
    assert net.reprogrammer.pre[0].score[0].weight.grad is not None if options.get("pool") == "none" else True


def test_teacher_dims_refuse_a_2d_teacher_on_volumes_naming_the_slicewise_form():
    from monai_rd.methods import build_method
    from monai_rd.networks import check_teacher_dims

    teacher2d = build_teacher("torchvision:resnet18", weights="random", input_size=32)
    student3d = StudentClassifier("monai:resnet10", num_classes=2, spatial_dims=3)
    with pytest.raises(ValueError, match=r"--teacher slicewise:torchvision:resnet18 ") as info:
        check_teacher_dims(teacher2d, 3)
    assert "2D teacher" in str(info.value) and "spatial_dims=3" in str(info.value)
    with pytest.raises(ValueError, match="slicewise:torchvision:resnet18"):  # build_method checks before any step
        build_method("rd", teacher=teacher2d, student=student3d, num_classes=2, image_size=32)
    slicewise = build_teacher("slicewise:torchvision:resnet18", weights="random", input_size=32)
    check_teacher_dims(slicewise, 3)  # the named fix passes, and runs on a volume
    assert tuple(slicewise(torch.rand(1, 1, 4, 32, 32)).shape) == (1, 512)
    check_teacher_dims(teacher2d, 2)
    check_teacher_dims(None, 3)  # a feature cache or no teacher: nothing to check
    with pytest.raises(ValueError, match="volume teacher .* 2D images"):
        check_teacher_dims(build_teacher("medicalnet_resnet10", weights="random"), 2)

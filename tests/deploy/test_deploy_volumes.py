"""3D students export to ONNX/TorchScript with parity, reload from model.pt as volumes, and are costed on volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_rd.deploy.cost import cost_table, count_flops
from monai_rd.deploy.export import example_input_shape, export_student, load_student, onnx_session
from monai_rd.networks import StudentClassifier


@pytest.fixture(scope="module")
def student_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = StudentClassifier("monai:resnet10", num_classes=3, spatial_dims=3).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save(model.state_dict(), path)
    return str(path), model


def test_load_student_recognises_a_volume_checkpoint(student_ckpt):
    path, model = student_ckpt
    loaded = load_student(path, "monai:resnet10")
    assert loaded.spatial_dims == 3 and example_input_shape(loaded, 32) == (1, 32, 32, 32)
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_3d_student_onnx_and_torchscript_parity(student_ckpt, tmp_path):
    path, model = student_ckpt
    result = export_student(load_student(path, "monai:resnet10"), tmp_path, image_size=32, batch_sizes=(1, 2))
    assert all(d < 1e-4 for d in result.max_abs_diff.values()), result.summary()
    # independently of export_student's own check: onnxruntime on a fresh volume vs eager PyTorch
    x = torch.rand(3, 1, 32, 32, 32, generator=torch.Generator().manual_seed(5))
    sess = onnx_session(result.files["onnx"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4, rtol=0)


def test_count_flops_on_a_3d_convolution_by_hand():
    conv = torch.nn.Conv3d(2, 4, kernel_size=3, padding=1, bias=False)
    x = torch.rand(1, 2, 8, 8, 8)
    assert count_flops(conv, x) == 2 * 2 * 4 * 27 * 8**3  # multiply-adds x 2 per output voxel


def test_cost_table_on_volumes():
    rows = cost_table("medicalnet_resnet10", ["monai:resnet10"], num_classes=2, image_size=32, batch_size=1,
                      backends=("eager",), warmup=0, repeats=1, spatial_dims=3)  # fmt: skip
    teacher, student = rows
    assert teacher.role == "teacher" and student.role == "student"
    ref = StudentClassifier("monai:resnet10", 2, spatial_dims=3)
    assert student.params == sum(p.numel() for p in ref.parameters())
    assert student.flops > 0 and teacher.flops > 0 and teacher.params > 0
    assert student.latency_ms["eager"] > 0

"""Export of the deployable student: TorchScript/ONNX parity on load-back, dynamic batch, CLI, bundle ckpt_export."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from monai_rd.cli import main as cli_main
from monai_rd.deploy.export import ParityError, export_student, load_student
from monai_rd.bundle import write_executed_config
from monai_rd.networks import StudentClassifier

from tests.helpers.forkserver import run as run_python
from tests.conftest import BUNDLES, REPO

PAPER_STUDENTS = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0"]


@pytest.mark.parametrize(
    "student,size",
    [  # resnet18 in the fast tier, the other students (10-20 s each) slow
        pytest.param(s, 32 if i % 2 else 64, marks=() if i == 0 else pytest.mark.slow)
        for i, s in enumerate(PAPER_STUDENTS)
    ],
)
def test_paper_students_export_with_parity_and_dynamic_batch(tmp_path, student, size):
    torch.manual_seed(0)
    model = StudentClassifier(student, num_classes=3).eval()
    result = export_student(model, tmp_path, image_size=size, batch_sizes=(1, 3))
    assert set(result.files) == {"torchscript", "onnx"}
    assert all(d < 1e-4 for d in result.max_abs_diff.values()), result.summary()

    # independent load-back: the ONNX batch axis is symbolic and both files accept another batch size (5)
    session = ort.InferenceSession(result.files["onnx"], providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    x = torch.rand(5, 3, size, size)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], expected, atol=1e-4, rtol=0)
    ts = torch.jit.load(result.files["torchscript"])
    with torch.no_grad():
        np.testing.assert_allclose(ts(x).numpy(), expected, atol=1e-4, rtol=0)


def test_parity_violation_raises(tmp_path):
    # a tolerance nothing can meet (|diff| < 0) must fail and report every format's difference
    with pytest.raises(ParityError, match="torchscript"):
        export_student(StudentClassifier("mobilenet_v3_small", 2), tmp_path, image_size=32, tolerance=0.0)


def test_parity_tolerance_is_relative_to_large_logits(tmp_path):
    """A trained student's logits reach the thousands, where float32 itself steps by 1e-4: the bound scales."""
    model = StudentClassifier("mobilenet_v3_small", 3)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([1500.0, -1500.0, 0.0]))  # logits in the thousands, as after training
    result = export_student(model, tmp_path, image_size=32, formats=("onnx",))
    assert result.scale > 1e3 and "x 1" in result.summary() and result.max_abs_diff["onnx"] > 0
    with pytest.raises(ParityError, match="onnx"):  # the scale multiplies the bound, it does not replace it
        export_student(model, tmp_path, image_size=32, formats=("onnx",), tolerance=0.0)


def test_load_student_infers_classes_and_rejects_foreign_checkpoints(tmp_path):
    model = StudentClassifier("mobilenet_v3_small", 4)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    loaded = load_student(tmp_path / "model.pt", "mobilenet_v3_small")
    assert loaded.num_classes == 4 and not loaded.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(KeyError, match="head.weight"):
        load_student(tmp_path / "other.pt", "mobilenet_v3_small")


@pytest.mark.slow
def test_cli_export(tmp_path, capsys):
    torch.save(StudentClassifier("shufflenet_v2_x1_0", 3).state_dict(), tmp_path / "model.pt")
    code = cli_main(
        [
            "export",
            "--ckpt",
            str(tmp_path / "model.pt"),
            "--student",
            "shufflenet_v2_x1_0",
            "--output_dir",
            str(tmp_path / "models"),
            "--image_size",
            "32",
        ]
    )
    assert code == 0
    assert (tmp_path / "models" / "model.ts").is_file() and (tmp_path / "models" / "model.onnx").is_file()
    assert "max|diff| vs eager" in capsys.readouterr().out


@pytest.mark.slow
def test_bundle_ckpt_export_matches_checkpoint(tmp_path):
    """``python -m monai.bundle ckpt_export`` with the bundle's inference.json ``network_def``."""
    torch.manual_seed(1)
    model = StudentClassifier("resnet18", 3).eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "models").mkdir()  # MONAI's ckpt_export does not create the folder
    configs = os.path.join(BUNDLES, "rd_busi", "configs")
    # inference.json reads the student and classes from the training run's record in --output_dir
    write_executed_config(os.path.join(configs, "train.json"), {"student": "resnet18", "class_names": ["benign", "malignant", "normal"]},
                          tmp_path / "executed_config.json")  # fmt: skip
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "ckpt_export",
        "--net_id",
        "network_def",
        "--filepath",
        str(tmp_path / "models" / "model.ts"),
        "--ckpt_file",
        str(tmp_path / "model.pt"),
        "--meta_file",
        os.path.join(configs, "metadata.json"),
        "--config_file",
        os.path.join(configs, "inference.json"),
        "--output_dir",
        str(tmp_path),
    ]
    proc = run_python(cmd, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    extra = {"metadata.json": "", "inference.json": ""}
    ts = torch.jit.load(str(tmp_path / "models" / "model.ts"), _extra_files=extra)
    assert (
        json.loads(extra["metadata.json"])["network_data_format"]["outputs"]["pred"]["channel_def"]["1"] == "malignant"
    )
    assert "network_def" in json.loads(extra["inference.json"])
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert (ts(x) - model(x)).abs().max().item() < 1e-4

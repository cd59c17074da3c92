"""Inference refuses unreadable inputs with a per-file list; the rd_busi inference.json predicts folders and datalists."""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from monai_rd.bundle import write_executed_config
from monai_rd.networks import StudentClassifier
from tests.helpers.forkserver import run as run_python
from tests.conftest import BUNDLES, REPO

CONFIGS = os.path.join(BUNDLES, "rd_busi", "configs")
CLASSES = ("benign", "malignant", "normal")


def _bundle_cmd(**overrides):
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", os.path.join(CONFIGS, "inference.json")]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


@pytest.fixture()
def checkpoint_dir(tmp_path):
    torch.manual_seed(0)
    model = StudentClassifier("mobilenet_v3_small", len(CLASSES)).eval()
    out = tmp_path / "out"
    out.mkdir()
    torch.save(model.state_dict(), out / "model.pt")
    # what training records in output_dir: inference.json reads the student, size and classes from it
    write_executed_config(os.path.join(CONFIGS, "train.json"), {"student": "mobilenet_v3_small", "image_size": 32,
                          "class_names": list(CLASSES)}, out / "executed_config.json")  # fmt: skip
    return out, model


@pytest.mark.slow
def test_bundle_inference_refuses_unreadable_folder(mixed_folder, checkpoint_dir):
    out, _ = checkpoint_dir
    proc = run_python(
        _bundle_cmd(input_dir=mixed_folder, output_dir=out, image_size=32, student="mobilenet_v3_small", num_workers=0),
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "BadInputError" in proc.stderr and "2 of 4" in proc.stderr
    assert "c_corrupt.png" in proc.stderr and "d_empty.png" in proc.stderr
    assert not (out / "predictions.csv").exists()
    listed = [os.path.basename(r["file"]) for r in csv.DictReader(open(out / "unreadable_inputs.csv"))]
    assert listed == ["c_corrupt.png", "d_empty.png"]


@pytest.mark.slow
def test_bundle_inference_datalist_skip_matches_eager_model(mixed_folder, checkpoint_dir, tmp_path):
    out, model = checkpoint_dir
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"test": [{"image": str(p)} for p in sorted(mixed_folder.iterdir())]}))
    proc = run_python(
        _bundle_cmd(
            datalist_file=datalist,
            output_dir=out,
            image_size=32,
            on_bad_input="skip",
            student="mobilenet_v3_small",
            num_workers=0,
            batch_size=2,
        ),
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [os.path.basename(r["file"]) for r in rows] == ["a good.png", "b_good.jpg"]
    assert len(list(csv.DictReader(open(out / "unreadable_inputs.csv")))) == 2
    from monai_rd.transforms import load_preset

    preset = load_preset("ultrasound", "eval", image_size=32)  # rd_busi's modality, as the training run recorded it
    for row in rows:
        # outside the bundle: PIL decode, the modality preset (tested on its own elsewhere), the eager model
        pixels = np.asarray(Image.open(row["file"]).convert("RGB"), dtype=np.float32)
        image = preset({"image": torch.from_numpy(pixels).permute(2, 0, 1)})["image"]
        with torch.no_grad():
            expected = torch.softmax(model(torch.as_tensor(image)[None]), dim=1)[0].numpy()
        got = np.array([float(row[f"prob_{c}"]) for c in CLASSES])
        np.testing.assert_allclose(got, expected, atol=2e-5)
        assert row["predicted_label"] == CLASSES[int(np.argmax(expected))]


@pytest.mark.slow
def test_clinical_bundle_inference_dicom_nifti_png(tmp_path):
    """rd_clinical inference.json: a DICOM series folder, a NIfTI volume and a PNG; bad sources refused together."""
    from monai_rd.data.synthetic.medical import write_dicom_series, write_nifti_volume

    folder = tmp_path / "in"
    write_dicom_series(str(folder / "series_a"), n_slices=4, size=32, lesion=True)
    write_nifti_volume(str(folder / "vol.nii.gz"))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)).save(folder / "img.png")
    out = tmp_path / "out"
    out.mkdir()
    torch.manual_seed(0)
    torch.save(StudentClassifier("mobilenet_v3_small", 2).state_dict(), out / "model.pt")
    (out / "datalist.json").write_text(json.dumps({"classes": ["normal", "lesion"], "training": [], "validation": []}))
    clinical = os.path.join(BUNDLES, "rd_clinical", "configs", "inference.json")
    write_executed_config(os.path.join(BUNDLES, "rd_clinical", "configs", "train.json"),
                          {"student": "mobilenet_v3_small", "image_size": 32, "class_names": ["normal", "lesion"],
                           "spatial_dims": 2, "in_channels": 3},
                          out / "executed_config.json")  # fmt: skip
    args = dict(input_dir=folder, output_dir=out, image_size=32, student="mobilenet_v3_small", num_workers=0)

    def run(**extra):
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", clinical]
        for key, value in {**args, **extra}.items():
            cmd += [f"--{key}", str(value)]
        return run_python(cmd, cwd=REPO, timeout=300)

    proc = run()
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 3 and {r["predicted_label"] for r in rows} <= {"normal", "lesion"}
    assert all(abs(float(r["prob_normal"]) + float(r["prob_lesion"]) - 1) < 1e-4 for r in rows)

    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 10)
    (folder / "empty.nii.gz").write_bytes(b"")
    (out / "predictions.csv").unlink()
    proc = run()
    assert proc.returncode != 0 and "2 of 5" in proc.stderr
    assert "broken.dcm" in proc.stderr and "empty.nii.gz" in proc.stderr
    assert not (out / "predictions.csv").exists()
    assert len(list(csv.DictReader(open(out / "unreadable_inputs.csv")))) == 2

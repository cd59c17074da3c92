"""rd_mosmed through the MONAI CLI on a fabricated MosMedData folder: a 3D teacher and a slice-wise 2D teacher,
then evaluate.json and inference.json on NIfTI volumes and on a DICOM series folder."""

from __future__ import annotations

import csv
import json
import os
import sqlite3

import pytest

from tests.conftest import BUNDLES, run_bundle
from tests.helpers.weights import random_resnet18_weights

ROOT = os.path.join(BUNDLES, "rd_mosmed")
CONFIGS = os.path.join(ROOT, "configs")
COMMON = dict(bundle_root=ROOT, image_size=32, num_workers=0, labeling="binary")


@pytest.fixture(scope="module")
def mosmed_dir(tmp_path_factory):
    from monai_rd.data.synthetic import make_mosmed_like

    return make_mosmed_like(tmp_path_factory.mktemp("mosmed"), n_per_grade=3, shape=(32, 32, 12))


def _train(mosmed_dir, out, **overrides):
    return run_bundle(
        os.path.join(CONFIGS, "train.json"), dataset_dir=mosmed_dir, output_dir=out, max_epochs=1, batch_size=2,
        progress_bar=False, **COMMON, **overrides,
    )  # fmt: skip


def _check_run(out, teacher):
    import torch

    from monai_rd.networks import StudentClassifier

    state = torch.load(os.path.join(out, "model.pt"), weights_only=True)
    StudentClassifier("monai:resnet10", 2, spatial_dims=3).load_state_dict(state, strict=True)
    db = sqlite3.connect(os.path.join(out, "mlruns.db"))
    params = dict(db.execute("select key, value from params").fetchall())
    metrics = {k for (k,) in db.execute("select distinct key from metrics").fetchall()}
    versions = db.execute("select name from model_versions").fetchall()
    assert params["teacher"] == teacher and params["spatial_dims"] == "3" and params["labeling"] == "binary"
    assert len(params["teacher_weights_sha256"]) == 64
    assert {"val_accuracy", "val_auc_macro", "val_cka"} <= metrics
    assert "test_accuracy" in metrics  # the selected checkpoint scored once on the held-out test split
    assert params["num_test"] != "0" and params["split_protocol"] == "holdout"
    assert versions == [("rd_mosmed_student",)]


@pytest.mark.slow
def test_train_with_3d_teacher_then_evaluate_and_infer(mosmed_dir, tmp_path):
    from monai_rd.data.synthetic import write_chest_ct_volume, write_dicom_series
    from tests.helpers.volume_sources import TencentResNet3D, randomize, save_data_parallel

    weights = str(tmp_path / "resnet_10_23dataset.pth")
    save_data_parallel(randomize(TencentResNet3D(10)), weights)
    out = str(tmp_path / "out")
    _train(mosmed_dir, out, teacher="medicalnet_resnet10", teacher_weights=weights)
    _check_run(out, "medicalnet_resnet10")

    run_bundle([os.path.join(CONFIGS, "train.json"), os.path.join(CONFIGS, "evaluate.json")], dataset_dir=mosmed_dir,
               output_dir=out, **COMMON)  # fmt: skip
    with open(os.path.join(out, "eval", "test", "metrics.csv")) as f:
        assert "accuracy" in f.read()

    samples = tmp_path / "samples"
    write_chest_ct_volume(samples / "a.nii.gz", "CT-3", (32, 32, 12))
    write_dicom_series(str(samples / "patient1" / "series1"), n_slices=6, size=32)
    # no --image_size, --student or --labeling: inference reads them from the training run's executed_config.json
    run_bundle(os.path.join(CONFIGS, "inference.json"), output_dir=out, input_dir=str(samples), bundle_root=ROOT,
               num_workers=0)  # fmt: skip
    with open(os.path.join(out, "predictions.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [os.path.basename(r["file"]) for r in rows] == ["a.nii.gz", "series1"]
    for r in rows:
        assert abs(float(r["prob_normal"]) + float(r["prob_abnormal"]) - 1) < 1e-4
        assert r["predicted_label"] in ("normal", "abnormal")


@pytest.mark.slow
def test_train_with_slicewise_2d_teacher(mosmed_dir, tmp_path):

    weights = random_resnet18_weights(tmp_path / "resnet18.pth")
    out = str(tmp_path / "out")
    _train(mosmed_dir, out, teacher="slicewise:torchvision:resnet18", teacher_weights=weights)
    _check_run(out, "slicewise:torchvision:resnet18")
    executed = json.load(open(os.path.join(out, "executed_config.json")))
    assert executed["teacher"] == "slicewise:torchvision:resnet18" and executed["image_size"] == 32

"""The rd_busi bundle end to end through the real MONAI CLI: train, MLflow, evaluate, inference."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import BUNDLES, REPO, run_bundle

CONFIGS = os.path.join(BUNDLES, "rd_busi", "configs")
MAX_EPOCHS = 2


@pytest.fixture(scope="module")
def trained(busi_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("rd_busi_out"))
    run_bundle(
        os.path.join(CONFIGS, "train.json"), cwd=tmp_path_factory.mktemp("elsewhere"),
        dataset_dir=busi_dir, output_dir=out, max_epochs=MAX_EPOCHS, image_size=32, batch_size=8,
        num_workers=0, progress_bar=False, teacher="resnet50", teacher_weights="random", student="resnet18",
    )  # fmt: skip
    return out


def test_training_writes_best_student_checkpoint(trained):
    import torch

    from monai_rd.networks import StudentClassifier

    state = torch.load(os.path.join(trained, "model.pt"), weights_only=True)
    assert not any(k.startswith(("teacher", "reprogrammer")) for k in state)
    StudentClassifier("resnet18", 3).load_state_dict(state, strict=True)
    datalist = json.load(open(os.path.join(trained, "datalist.json")))
    assert len(datalist["training"]) == 24 and len(datalist["validation"]) == 6


def test_mlflow_store_holds_the_run(trained):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{trained}/mlruns.db")
    experiment = client.get_experiment_by_name("rd_busi")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["teacher"] == "resnet50" and params["student"] == "resnet18" and params["max_epochs"] == "2"
    assert params["teacher_weights_sha256"] == "random-init" and len(params["split_hash"]) == 16
    # a random teacher is spelled out, tagged, and warned about in the run's report
    assert params["teacher_weights"] == "random" and params["teacher_weights_source"] == "random"
    assert run.data.tags["teacher_weights_source"] == "random" and params["teacher_feature_shape"] == "[2048]"
    report = open(os.path.join(trained, "report", "classification_report.md")).read()
    assert report.startswith("**WARNING: the teacher has RANDOM weights")
    iters_per_epoch = 24 // 8
    total = MAX_EPOCHS * iters_per_epoch
    for key in ("loss", "loss_ce_teacher", "loss_ce_student", "loss_kd", "loss_cka", "cka"):
        history = client.get_metric_history(run.info.run_id, key)
        assert len(history) == total and all(np.isfinite(m.value) for m in history), key
    # the linear decay of the KD and CKA weights, as logged per iteration
    for key in ("weight_kd", "weight_cka"):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, total + 1))
        assert [m.value for m in history] == pytest.approx([1 - i / (total - 1) for i in range(total)])
    for key in ("weight_ce_teacher", "weight_ce_student"):
        assert {m.value for m in client.get_metric_history(run.info.run_id, key)} == {1.0}
    for key in ("val_accuracy", "val_f1_macro", "val_auc_macro", "val_cka"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key
        assert all(0.0 <= m.value <= 1.0 for m in history), key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"executed_config.json", "datalist.json"} <= artifacts
    executed = json.load(open(os.path.join(trained, "executed_config.json")))
    assert executed["max_epochs"] == MAX_EPOCHS and executed["image_size"] == 32


def test_evaluate_scores_the_checkpoint(trained):
    run_bundle(os.path.join(CONFIGS, "evaluate.json"), output_dir=trained, image_size=32, num_workers=0)
    with open(os.path.join(trained, "eval", "metrics.csv")) as f:
        metrics = dict(line.strip().split(",") for line in f if line.strip())
    assert set(metrics) == {"accuracy", "f1_macro", "auc_macro"}
    assert all(0.0 <= float(v) <= 1.0 for v in metrics.values())


def test_inference_writes_probabilities(trained, busi_dir):
    folder = os.path.join(busi_dir, "malignant")
    out_csv = os.path.join(trained, "predictions.csv")
    run_bundle(os.path.join(CONFIGS, "inference.json"), output_dir=trained, input_dir=folder, image_size=32,
               num_workers=0)
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == len([f for f in os.listdir(folder) if f.endswith(".png")])
    for row in rows:
        probs = [float(row[f"prob_{c}"]) for c in ("benign", "malignant", "normal")]
        assert abs(sum(probs) - 1) < 1e-4
        assert row["predicted_label"] == ("benign", "malignant", "normal")[int(np.argmax(probs))]


def test_metadata_verifies_offline():
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", os.path.join(CONFIGS, "metadata.json"),
         "--filepath", os.path.join(REPO, "monai_rd", "schemas", "bundle_metadata_schema.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "metadata is verified with no error" in proc.stdout + proc.stderr


def test_bad_dataset_dir_is_a_clear_error(tmp_path):
    with pytest.raises(AssertionError, match="does not exist"):
        run_bundle(os.path.join(CONFIGS, "train.json"), dataset_dir=tmp_path / "missing", output_dir=tmp_path,
                   max_epochs=1, image_size=32, num_workers=0)

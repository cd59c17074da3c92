"""End to end: the rd_busi bundle logs, reports and registers to MLflow (embedded SQLite store and a real server
that is killed mid-run)."""

import base64
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO, run_bundle, start_mlflow_server

pytestmark = pytest.mark.slow  # every test here runs a bundle or a server end to end

mlflow = pytest.importorskip("mlflow")

TRAIN = os.path.join(REPO, "bundles", "rd_busi", "configs", "train.json")
COMMON = {
    "max_epochs": 2,
    "image_size": 32,
    "batch_size": 8,
    "num_workers": 0,
    "progress_bar": False,
    "teacher": "resnet50",
    "teacher_weights": "random",
}
REPORT_FILES = [
    "classification_report.csv",
    "classification_report.json",
    "classification_report.md",
    "confusion_matrix.png",
    "roc_curves.png",
    "test_metrics.json",
    "training_curves.png",
    "training_history.json",
]
BOUNDED = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def _student_from_checkpoint(path):
    from monai_rd.networks import StudentClassifier, load_weights

    return load_weights(StudentClassifier("resnet18", num_classes=3), path).eval()


def test_bundle_run_logs_reports_and_registers_to_sqlite(busi_dir, tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    run_bundle(TRAIN, dataset_dir=busi_dir, output_dir=out, env=env, **COMMON)
    db = f"sqlite:///{out}/mlruns.db"
    client = mlflow.MlflowClient(tracking_uri=db, registry_uri=db)
    assert not (out / "mlflow_not_logged.json").exists()

    # the report of the best checkpoint, on disk and as run artifacts
    assert sorted(os.listdir(out / "report")) == REPORT_FILES
    report = json.loads((out / "report" / "classification_report.json").read_text())
    version = client.get_model_version_by_alias("rd_busi_student", "champion")
    assert str(version.version) == "1"
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "report")) == [
        f"report/{f}" for f in REPORT_FILES
    ]
    assert {"executed_config.json", "datalist.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}

    # per-iteration loss terms and weights, per-epoch validation metrics, hyper-parameters with hashes
    iterations = len(client.get_metric_history(run.info.run_id, "loss"))
    assert iterations == 2 * (int(run.data.params["num_train"]) // 8)  # batch 8, drop_last, 2 epochs
    for key in ("loss_ce_teacher", "loss_ce_student", "loss_kd", "loss_cka", "weight_kd", "weight_cka"):
        assert len(client.get_metric_history(run.info.run_id, key)) == iterations
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2]
    params = run.data.params
    assert params["teacher"] == "resnet50" and params["student"] == "resnet18" and len(params["split_hash"]) > 8

    # the version: tags, metrics of the best checkpoint = recomputed report, alias decision
    tags = version.tags
    assert (
        tags["teacher"] == "resnet50" and tags["student"] == "resnet18" and tags["split_hash"] == params["split_hash"]
    )
    assert float(tags["val_accuracy"]) == pytest.approx(report["accuracy"], abs=1e-6)
    assert float(tags["val_auc_macro"]) == pytest.approx(report["macro"]["auc"], abs=1e-5)
    assert run.data.metrics["best_val_accuracy"] == pytest.approx(report["accuracy"], abs=1e-9)
    assert tags["alias_decision"].startswith("promoted")
    from monai_rd.utils import sha256_file

    assert tags["checkpoint_sha256"] == sha256_file(out / "model.pt")

    # the servable pyfunc (TorchScript student + the bundle's preprocessing) predicts as the checkpoint
    assert "resnet50" in version.description and "{{" not in version.description  # the rendered model card
    try:
        mlflow.set_tracking_uri(db)
        mlflow.set_registry_uri(db)
        loaded = mlflow.pyfunc.load_model("models:/rd_busi_student@champion")
        # issue 28, item 3: the version the bundle registered has a signature and an input example
        info = mlflow.models.get_model_info(f"models:/rd_busi_student/{version.version}")
        assert info.signature.inputs.input_names() == ["image"] and info.saved_input_example_info is not None
        serving = mlflow.artifacts.download_artifacts("models:/rd_busi_student@champion", dst_path=str(tmp_path / "m"))
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    assert "monai-rd" not in (tmp_path / "m" / "requirements.txt").read_text()
    reference = _student_from_checkpoint(out / "model.pt")
    x = (torch.rand(4, 3, 32, 32) * 255).round()  # 8-bit RGB PNG files at the bundle's 32 px: preprocessing is / 255
    files = []
    for i, a in enumerate(x.numpy().astype(np.uint8)):
        buf = io.BytesIO()
        Image.fromarray(np.moveaxis(a, 0, -1)).save(buf, format="PNG")
        files.append(base64.b64encode(buf.getvalue()).decode())
    with torch.no_grad():
        expected = torch.softmax(reference(x / 255), 1).numpy()
    got = [[p["probabilities"][c] for c in ("benign", "malignant", "normal")] for p in loaded.predict({"image": files})]
    assert serving and abs(torch.tensor(got).numpy() - expected).max() < 1e-5


def test_server_killed_mid_run_training_finishes_and_says_what_was_not_logged(busi_dir, tmp_path):
    out = tmp_path / "out"
    with start_mlflow_server(tmp_path / "server") as server:
        env = {
            **BOUNDED,
            "MLFLOW_TRACKING_URI": server["uri"],
            "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "tests", "helpers"), os.environ.get("PYTHONPATH", REPO)]),
        }
        # the test-only killer takes the place of the (disabled) progress bar, before the MLflow handler
        killer = {
            "_target_": "mlflow_kill.KillProcessGroupAt",
            "pgid": server["pgid"],
            "iteration": 2,
            "url": server["uri"],
        }
        proc = run_bundle(
            TRAIN,
            dataset_dir=busi_dir,
            output_dir=out,
            env=env,
            timeout=400,
            mlflow_may_fail=True,
            **{**COMMON, "max_epochs": 1, "train#handlers#4": repr(killer)},
        )
    text = proc.stdout + proc.stderr
    assert "TEST: killed the MLflow server at iteration 2" in text
    # training finished: checkpoint and local report kept
    assert (out / "model.pt").is_file()
    assert sorted(os.listdir(out / "report")) == REPORT_FILES
    assert "Engine run finished" in text
    # the log and the JSON list say what is missing
    assert "NOT logged" in text and "rd_busi_student" in text
    not_logged = json.loads((out / "mlflow_not_logged.json").read_text())
    assert not_logged["tracking_uri"] == server["uri"] and not_logged["failure"]
    dropped = not_logged["not_logged"]
    metric_names = {n for k, v in dropped.items() if k.startswith("metrics") for n in v["names"]}
    assert {"loss", "loss_kd", "weight_kd", "val_accuracy", "val_auc_macro"} <= metric_names
    assert 2 in set(dropped["metrics"]["steps"])  # iteration 2 on (iteration 1 was logged before the kill)
    assert {"executed_config.json", "datalist.json"} <= set(dropped["artifacts"]["names"])
    report_names = {n for k, v in dropped.items() if k.startswith("best-model report") for n in v["names"]}
    assert set(REPORT_FILES) - {"test_metrics.json"} <= report_names  # the test-split report is logged apart
    assert any(k.startswith("model: best student") for k in dropped)
    # what was logged before the kill is in the server's store
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{server['root']}/backend.db")
    run = client.get_run(not_logged["run_id"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1]
    assert run.data.params["teacher"] == "resnet50"

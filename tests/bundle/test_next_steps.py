"""What a finished run says last (bundle/next_steps.py): the model file, the MLflow run read from a real SQLite
store, the next commands; inference: where predictions.csv and unreadable_inputs.csv are."""

import os
import time

import pytest

from monai_rd.bundle import bundle_root, inference_done_lines, training_done_lines


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real SQLite MLflow store: three runs, the second one's student registered as version 1."""
    from mlflow.tracking import MlflowClient

    tmp_path = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("rd_busi")
    client.create_run(experiment, run_name="older")
    run = client.create_run(experiment, run_name="rd_busi_rd_x")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("rd_busi_student")
    client.create_model_version("rd_busi_student", f"{tmp_path}/model", run_id=run.info.run_id)
    time.sleep(0.05)  # the newest run by start time (ms)
    client.create_run(experiment, run_name="rd_busi_kd_x")  # not registered (e.g. a teacher-only method)
    return uri, run.info.run_id


def test_training_names_model_run_and_next_commands(store, tmp_path):
    uri, run_id = store
    out = str(tmp_path / "out")
    lines = training_done_lines(bundle_root("rd_busi"), out, f"{out}/model.pt", uri, "rd_busi", "rd_busi_rd_x",
                                "rd_busi_student")  # fmt: skip
    text = "\n".join(lines)
    assert lines[0] == f"Training finished. Best student (deployable, no teacher): {out}/model.pt"
    assert lines[1].startswith(f"MLflow run {run_id} (experiment 'rd_busi') in {uri}; browse: mlflow ui ")
    configs = os.path.join(bundle_root("rd_busi"), "configs")
    assert f"--config_file \"['{configs}/train.json','{configs}/evaluate.json']\" --output_dir {out}" in text
    assert f"{configs}/inference.json --output_dir {out} --input_dir <folder>" in text
    assert f"MLFLOW_TRACKING_URI={uri} mlflow models serve -m models:/rd_busi_student/1 " in text
    # the newest run when the name is not known (the demo)
    newest = training_done_lines("rd_busi", out, f"{out}/model.pt", uri, "rd_busi")[1]
    assert newest.startswith("MLflow run ") and run_id not in newest


def test_training_without_a_registered_model_or_a_store_still_ends_cleanly(store, tmp_path):
    uri, _ = store
    lines = training_done_lines("rd_busi", str(tmp_path), "model.pt", uri, "rd_busi", "rd_busi_kd_x", "rd_busi_student")
    assert not any("mlflow models serve" in line for line in lines)  # not registered (e.g. a teacher-only method)
    lost = training_done_lines("rd_busi", str(tmp_path), "model.pt", f"sqlite:///{tmp_path}/no/such/dir/x.db",
                               "rd_busi", "rd_busi_rd_x")  # fmt: skip
    assert lost[1].startswith(f"MLflow run not found in sqlite:///{tmp_path}/no/such/dir/x.db (")
    assert "mlflow_not_logged.json" in lost[1] and "Evaluate it" in lost[2]
    # a run whose store failed mid-run (mlflow_not_logged.json written) is not looked up again
    (tmp_path / "mlflow_not_logged.json").write_text("{}")
    failed = training_done_lines("rd_busi", str(tmp_path), "model.pt", uri, "rd_busi", "rd_busi_rd_x")
    assert failed[1].startswith(f"MLflow run not found in {uri} (MLflow failed during the run); {tmp_path}/mlflow_not")


def test_inference_names_predictions_and_unreadable_inputs(tmp_path):
    out, errors = tmp_path / "predictions.csv", tmp_path / "unreadable_inputs.csv"
    assert inference_done_lines(str(out), str(errors), 3) == [f"Predictions (3 images) written to {out}"]
    errors.write_text("file,error\nx.png,truncated\n")
    assert inference_done_lines(str(out), str(errors), 1) == [
        f"Predictions (1 image) written to {out}",
        f"Unreadable inputs (skipped) listed in {errors}",
    ]

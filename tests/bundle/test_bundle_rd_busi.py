"""The rd_busi bundle end to end through the real MONAI CLI: train, MLflow, evaluate, inference."""

import csv
import json
import os
import sys

import numpy as np
import pytest

from tests.helpers.forkserver import run as run_python
from tests.conftest import BUNDLES, REPO, run_bundle

pytestmark = pytest.mark.slow  # every test here runs a bundle or a server end to end

CONFIGS = os.path.join(BUNDLES, "rd_busi", "configs")
MAX_EPOCHS = 2
STDOUT = {}  # the training run's stdout, for the tests of what it says


@pytest.fixture(scope="module")
def trained(busi_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("rd_busi_out"))
    STDOUT["train"] = run_bundle(
        os.path.join(CONFIGS, "train.json"),
        cwd=tmp_path_factory.mktemp("elsewhere"),
        dataset_dir=busi_dir,
        output_dir=out,
        max_epochs=MAX_EPOCHS,
        image_size=32,
        batch_size=8,
        num_workers=0,
        progress_bar="false",
        resume="true",
        amp="FALSE",
        teacher="resnet50",
        teacher_weights="random",
        student="resnet18",
    ).stdout  # fmt: skip  (booleans as the README writes them)
    return out


def test_training_writes_best_student_checkpoint(trained):
    import torch

    from monai_rd.networks import StudentClassifier

    state = torch.load(os.path.join(trained, "model.pt"), weights_only=True)
    assert not any(k.startswith(("teacher", "reprogrammer")) for k in state)
    StudentClassifier("resnet18", 3).load_state_dict(state, strict=True)
    datalist = json.load(open(os.path.join(trained, "datalist.json")))
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [18, 6, 6]
    assert datalist["split_protocol"] == "holdout" and datalist["test_split"] == "held-out"
    # it ends naming the model file, the MLflow run and the next commands (bundle/next_steps.py), and said once that
    # drop_last skips 18 % 8 = 2 training images per epoch
    from mlflow.tracking import MlflowClient

    out = STDOUT["train"]
    run = MlflowClient(f"sqlite:///{trained}/mlruns.db").search_runs(
        [MlflowClient(f"sqlite:///{trained}/mlruns.db").get_experiment_by_name("rd_busi").experiment_id]
    )[0]
    tail = out[out.index("Training finished.") :]
    assert f"Best student (deployable, no teacher): {os.path.join(trained, 'model.pt')}" in tail
    assert f"MLflow run {run.info.run_id} (experiment 'rd_busi')" in tail and "mlruns.db" in tail
    assert os.path.join(CONFIGS, "evaluate.json") in tail and f"--output_dir {trained}" in tail
    assert os.path.join(CONFIGS, "inference.json") in tail and "mlflow models serve -m models:/rd_busi_student/" in tail
    assert tail.rstrip().splitlines()[-1].endswith("-p 5001")  # nothing after the next commands
    assert "training epoch 1/2: " in out and "about" in out and "training epoch 2/2: " in out
    assert out.count("training: 18 images, batch_size 8 with drop_last: 2 image(s) per epoch are skipped") == 1


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
    iters_per_epoch = 18 // 8
    total = MAX_EPOCHS * iters_per_epoch
    for key in ("loss", "loss_ce_teacher", "loss_ce_student", "loss_kd", "loss_cka", "cka"):
        history = client.get_metric_history(run.info.run_id, key)
        assert len(history) == total and all(np.isfinite(m.value) for m in history), key
    # the bundle's default "warmup" schedule of the KD and CKA weights, as logged per iteration: 0 for the first
    # 20 % of training (progress p = i / (total - 1)), then 1 falling linearly to 0 over the rest
    assert params["loss_schedule"] == "warmup"
    assert params["teacher_trains_head"] == "False"  # h learns from the student's terms (docs/methods.md)
    assert params["teacher_warmup"] == "False"  # opt-in: it loses where the teacher is weaker (docs/methods.md)
    assert params["teacher_gate"] == "auto"  # on here (single-label co-training): KD and CKA follow the gate
    schedule = [0.0 if i / (total - 1) < 0.2 else 1 - (i / (total - 1) - 0.2) / 0.8 for i in range(total)]
    gate = sorted(client.get_metric_history(run.info.run_id, "distillation_gate_open"), key=lambda m: m.step)
    assert [m.step for m in gate] == list(range(1, MAX_EPOCHS + 1))  # a decision after each epoch's validation
    branch = client.get_metric_history(run.info.run_id, "val_teacher_branch_accuracy")
    assert len(branch) == MAX_EPOCHS and all(0.0 <= m.value <= 1.0 for m in branch)
    open_in_epoch = [1.0] + [m.value for m in gate]  # it starts open; epoch e follows the decision after e - 1
    expected = [w * open_in_epoch[i // iters_per_epoch] for i, w in enumerate(schedule)]
    for key in ("weight_kd", "weight_cka"):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, total + 1))
        assert [m.value for m in history] == pytest.approx(expected)
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
    # the command line's booleans as they ran (--resume true --amp FALSE --progress_bar false), in both records
    assert (executed["resume"], executed["amp"], executed["progress_bar"]) == (True, False, False)
    assert (params["resume"], params["amp"], params["progress_bar"]) == ("True", "False", "False")
    assert executed["device"] == params["device"] in ("cpu", "cuda:0") and params["amp_loss_scaling"] == "False"
    # the registered model's card says what ran: its recipe is the executed config's, not the template's prose
    version = client.get_model_version_by_alias("rd_busi_student", "champion")
    card = version.description
    for key, value in (("teacher", "resnet50"), ("teacher_weights_source", "random"), ("loss_schedule", "warmup"),
                       ("teacher_trains_head", "false"), ("reprogrammer_budget", "0.25"), ("split_protocol", "holdout"),
                       ("max_epochs", "2"), ("image_size", "32")):  # fmt: skip
        assert f"| `{key}` | `{value}` |" in card, key
    assert executed["loss_schedule"] == "warmup" and executed["reprogrammer_budget"] == 0.25
    assert "{{" not in card and "| val_accuracy |" in card


EVALUATE = [os.path.join(CONFIGS, "train.json"), os.path.join(CONFIGS, "evaluate.json")]


def _datalist_with_test(trained, tmp_path):
    """The run's datalist with a hand-written ``test`` split (the 6 validation items, 2 per class), as the indexers
    now write."""
    datalist = json.load(open(os.path.join(trained, "datalist.json")))
    datalist["test"] = datalist["validation"]
    path = tmp_path / "datalist_with_test.json"
    path.write_text(json.dumps(datalist))
    return str(path)


def test_evaluate_overlay_scores_the_test_split_from_output_dir_alone(trained, tmp_path):
    datalist_file = _datalist_with_test(trained, tmp_path)
    proc = run_bundle(EVALUATE, cwd=tmp_path, output_dir=trained, datalist_file=datalist_file, num_workers=0)
    assert f"Scored the 'test' split (6 items) of {datalist_file}" in proc.stdout
    with open(os.path.join(trained, "eval", "test", "metrics.csv")) as f:
        metrics = dict(line.strip().split(",") for line in f if line.strip())
    assert set(metrics) == {"accuracy", "f1_macro", "auc_macro"}
    assert all(0.0 <= float(v) <= 1.0 for v in metrics.values())
    summary = json.load(open(os.path.join(trained, "eval", "test", "summary.json")))
    assert summary["split"] == "test" and summary["num_items"] == 6
    assert summary["metrics"]["accuracy"] == pytest.approx(float(metrics["accuracy"]))
    # any split on request
    run_bundle(EVALUATE, cwd=tmp_path, output_dir=trained, datalist_key="validation", num_workers=0)
    assert json.load(open(os.path.join(trained, "eval", "validation", "summary.json")))["num_items"] == 6


def test_evaluate_names_a_missing_test_split(trained, tmp_path):
    datalist = json.load(open(os.path.join(trained, "datalist.json")))
    datalist.pop("test", None)
    path = tmp_path / "no_test.json"
    path.write_text(json.dumps(datalist))
    with pytest.raises(AssertionError) as info:
        run_bundle(EVALUATE, cwd=tmp_path, output_dir=trained, datalist_file=path, num_workers=0)
    last = str(info.value).rstrip().splitlines()[-1]
    assert "SplitNotFoundError" in str(info.value)
    assert "has no split 'test' (its splits: ['training', 'validation'])" in last


def test_selected_checkpoint_scored_on_test_with_intervals(trained):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{trained}/mlruns.db")
    run = client.search_runs([client.get_experiment_by_name("rd_busi").experiment_id])[0]
    metrics, tags, params = run.data.metrics, run.data.tags, run.data.params
    for name in ("test_accuracy", "test_f1_macro", "test_auc_macro"):
        assert 0.0 <= metrics[f"{name}_ci_low"] <= metrics[name] <= metrics[f"{name}_ci_high"] <= 1.0, name
        assert len(client.get_metric_history(run.info.run_id, name)) == 1  # scored once, at the end
    assert metrics["test_num_samples"] == 6
    assert tags["split_protocol"] == params["split_protocol"] == "holdout" and tags["test_split"] == "held-out"
    assert params["num_test"] == "6"
    record = json.load(open(os.path.join(trained, "report", "test_metrics.json")))
    assert record["split"] == "test" and record["checkpoint"] == os.path.join(trained, "model.pt")
    assert record["metrics"]["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert "report/test_metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    datalist = json.load(open(os.path.join(trained, "datalist.json")))
    test_images = {i["image"] for i in datalist["test"]}
    assert not test_images & {i["image"] for k in ("training", "validation") for i in datalist[k]}


def test_inference_writes_probabilities(trained, busi_dir):
    folder = os.path.join(busi_dir, "malignant")
    out_csv = os.path.join(trained, "predictions.csv")
    proc = run_bundle(os.path.join(CONFIGS, "inference.json"), output_dir=trained, input_dir=folder, num_workers=0)
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == len([f for f in os.listdir(folder) if f.endswith(".png") and "_mask" not in f])
    assert proc.stdout.rstrip().splitlines()[-1] == f"Predictions ({len(rows)} images) written to {out_csv}"
    for row in rows:
        probs = [float(row[f"prob_{c}"]) for c in ("benign", "malignant", "normal")]
        assert abs(sum(probs) - 1) < 1e-4
        assert row["predicted_label"] == ("benign", "malignant", "normal")[int(np.argmax(probs))]


def test_inference_on_the_dataset_folder_skips_the_masks(trained, busi_dir, tmp_path):
    out_csv = tmp_path / "all.csv"
    run_bundle(os.path.join(CONFIGS, "inference.json"), cwd=tmp_path, output_dir=trained, input_dir=busi_dir,
               output_file=out_csv, num_workers=0)  # fmt: skip
    images = [f for _, _, names in os.walk(busi_dir) for f in names if f.endswith(".png") and "_mask" not in f]
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == len(images) == 30 and not any("_mask" in r["file"] for r in rows)


def test_inference_refuses_an_override_that_contradicts_the_checkpoint(trained, busi_dir, tmp_path):
    with pytest.raises(AssertionError) as info:
        run_bundle(os.path.join(CONFIGS, "inference.json"), cwd=tmp_path, output_dir=trained, input_dir=busi_dir,
                   image_size=64, num_workers=0)  # fmt: skip
    final = str(info.value).rsplit("The error that stopped the bundle:", 1)[1]
    assert "ConfigError: override(s) contradict the training run" in final
    assert "--image_size 64: the checkpoint was trained with 32" in final


def test_metadata_verifies_offline():
    proc = run_python(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "verify_metadata",
            "--meta_file",
            os.path.join(CONFIGS, "metadata.json"),
            "--filepath",
            os.path.join(REPO, "monai_rd", "schemas", "bundle_metadata_schema.json"),
        ],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "metadata is verified with no error" in proc.stdout + proc.stderr


def test_bad_dataset_dir_is_a_clear_error(tmp_path):
    with pytest.raises(AssertionError, match="does not exist"):
        run_bundle(
            os.path.join(CONFIGS, "train.json"),
            dataset_dir=tmp_path / "missing",
            output_dir=tmp_path,
            max_epochs=1,
            image_size=32,
            num_workers=0,
        )

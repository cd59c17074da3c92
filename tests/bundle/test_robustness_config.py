"""Hostile configs: unknown override ids and wrong types are refused naming the key; bundle-level checks."""

import json
import os
import sys

import pytest

from monai_rd.bundle.config_check import ConfigError, check_cli_overrides, check_run_params
from tests.helpers.forkserver import run as run_python
from tests.conftest import BUNDLES, REPO

TRAIN = os.path.join(BUNDLES, "rd_busi", "configs", "train.json")


def _argv(*extra):
    return ["monai/bundle/__main__.py", "run", "--config_file", TRAIN, *extra]


def test_known_overrides_pass():
    assert check_cli_overrides(_argv("--max_epochs", "2", "--train::dataloader::shuffle", "False", "--meta_file", "x")) == [
        "max_epochs", "train::dataloader::shuffle"]  # fmt: skip
    assert check_cli_overrides(_argv("--train#trainer#max_epochs", "3"))


def test_unknown_override_id_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"--max_epoch \(did you mean --max_epochs[ ?]"):
        check_cli_overrides(_argv("--max_epoch", "2"))
    with pytest.raises(ConfigError, match="--train::trainer::nope"):
        check_cli_overrides(_argv("--train::trainer::nope", "1"))


def test_a_new_argument_of_a_component_that_takes_it_passes():
    """docs/teachers.md: builder options are keys of teacher_def (build_teacher takes **options)."""
    assert check_cli_overrides(_argv("--teacher_def::pool", "attn", "--teacher_def::pooled", "False"))
    with pytest.raises(ConfigError, match="--train::trainer::nope"):  # RDTrainer takes no ``nope`` nor **kwargs
        check_cli_overrides(_argv("--train::trainer::nope", "1"))
    with pytest.raises(ConfigError, match="--seed::x"):  # not a component
        check_cli_overrides(_argv("--seed::x", "1"))


def test_config_file_list_form():
    multi = os.path.join(BUNDLES, "rd_busi", "configs", "multi_gpu_train.json")
    assert check_cli_overrides(["x", "run", "--config_file", f"['{TRAIN}','{multi}']", "--dist_backend", "gloo"])


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("batch_size", "eight", "an integer >= 1"),
        ("batch_size", 0, "an integer >= 1"),
        ("max_epochs", 2.5, "an integer >= 1"),
        ("learning_rate", -1.0, "a number > 0.0"),
        ("val_fraction", 1.0, "< 1.0"),
        ("detach_teacher", "yes", "true or false"),
        ("reprogrammer_lr_scale", 0.0, "a number > 0.0"),
        ("num_workers", True, "an integer >= 0"),
        ("on_bad_input", "ignore", "'error' or 'skip'"),
        ("amp_dtype", "int8", "'bfloat16' or 'float16'"),
        ("teacher_gate", "sometimes", "true, false or 'auto'"),
        (
            "method_options",
            {"teacher_gate": True},
            "['teacher_gate'] are bundle ids of their own, not method options; set them as --teacher_gate VALUE",
        ),
    ],
)
def test_wrong_types_are_refused_naming_the_key(key, value, expected):
    with pytest.raises(ConfigError) as err:
        check_run_params({"batch_size": 8, key: value})
    assert f"'{key}' = {value!r}" in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_the_gate_takes_a_boolean_or_auto(value):
    assert check_run_params({"teacher_gate": value, "method_options": {"teacher_gate_margin": -0.01}})


def _bundle(out, dataset_dir, *extra):
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN, "--dataset_dir", dataset_dir,
           "--output_dir", out, "--image_size", "32", "--batch_size", "8", "--num_workers", "0", "--max_epochs", "1",
           "--progress_bar", "False", "--teacher", "torchvision:resnet18", "--teacher_weights", "random",
           "--student", "resnet18", *extra]  # fmt: skip
    return run_python(cmd, cwd=REPO, timeout=600,
                      env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip


@pytest.mark.slow
def test_bundle_refuses_a_typo_and_a_wrong_type_before_training(busi_dir, tmp_path):
    proc = _bundle(str(tmp_path / "o1"), busi_dir, "--max_epoch", "2")
    assert proc.returncode != 0 and "--max_epoch (did you mean --max_epochs" in proc.stderr
    proc = _bundle(str(tmp_path / "o2"), busi_dir, "--batch_size", "eight")
    assert proc.returncode != 0 and "'batch_size' = 'eight'" in proc.stderr


@pytest.fixture
def busi_with_bad_file(busi_dir, tmp_path):
    """A copy of the fabricated BUSI folder with one truncated PNG."""
    import shutil

    root = str(tmp_path / "busi")
    shutil.copytree(busi_dir, root)
    bad = os.path.join(root, "malignant", "malignant (3).png")
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 2])
    return root, bad


@pytest.mark.slow
def test_bundle_names_a_corrupt_file_before_training(busi_with_bad_file, tmp_path):
    root, bad = busi_with_bad_file
    proc = _bundle(str(tmp_path / "o"), root)
    assert proc.returncode != 0
    assert "BadInputError" in proc.stderr and bad in proc.stderr and "truncated or corrupt" in proc.stderr
    assert not os.path.exists(tmp_path / "o" / "model.pt")


@pytest.mark.slow
def test_bundle_skip_mode_trains_without_it_and_records_it_in_mlflow(busi_with_bad_file, tmp_path):
    root, bad = busi_with_bad_file
    out = str(tmp_path / "o")
    proc = _bundle(out, root, "--on_bad_input", "skip")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "on_bad_input=skip: skipped" in log and bad in log
    datalist = json.load(open(os.path.join(out, "datalist.json")))
    assert [s["image"] for s in datalist["skipped"]] == [bad]
    assert bad not in [e["image"] for split in ("training", "validation") for e in datalist[split]]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlruns.db")
    run = client.search_runs([client.get_experiment_by_name("rd_busi").experiment_id])[0]
    path = client.download_artifacts(run.info.run_id, "datalist.json", str(tmp_path))
    assert [s["image"] for s in json.load(open(path))["skipped"]] == [bad]

"""MONAI Label support that needs no monailabel: packaging a run as a servable bundle, datastore class labels."""

from __future__ import annotations

import json
import os

import pytest
import torch

from monai_rd.bundle import write_executed_config
from monai_rd.cli import main as cli_main
from monai_rd.deploy.label import classification_datalist, prepare_label_bundle, read_class_label
from monai_rd.networks import StudentClassifier
from tests.conftest import BUNDLES

BUNDLE = os.path.join(BUNDLES, "rd_busi")
CLASSES = ["benign", "malignant", "normal"]


@pytest.fixture()
def run_dir(tmp_path):
    """An output_dir as train.json leaves it: model.pt (student state dict) and executed_config.json."""
    out = tmp_path / "run"
    out.mkdir()
    torch.manual_seed(0)
    model = StudentClassifier("mobilenet_v3_small", 3).eval()
    torch.save(model.state_dict(), out / "model.pt")
    write_executed_config(
        os.path.join(BUNDLE, "configs", "train.json"),
        {"student": "mobilenet_v3_small", "teacher": "resnet50", "image_size": 32, "max_epochs": 1},
        out / "executed_config.json",
    )
    return out, model


def test_prepare_label_bundle_places_model_and_run_settings(run_dir, tmp_path):
    out, model = run_dir
    dest = prepare_label_bundle(BUNDLE, out, tmp_path / "app_model" / "rd_busi")
    assert open(os.path.join(dest, "models", "model.pt"), "rb").read() == open(out / "model.pt", "rb").read()
    inference = json.load(open(os.path.join(dest, "configs", "inference.json")))
    train = json.load(open(os.path.join(dest, "configs", "train.json")))
    assert inference["student"] == train["student"] == "mobilenet_v3_small"
    assert inference["image_size"] == train["image_size"] == 32
    meta = json.load(open(os.path.join(dest, "configs", "metadata.json")))
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == {
        "0": "benign",
        "1": "malignant",
        "2": "normal",
    }
    # the source bundle is untouched
    assert (
        json.load(open(os.path.join(BUNDLE, "configs", "inference.json")))["student"] == "$@training_config['student']"
    )
    # the packaged bundle carries its training run's settings instead of reading them from an output_dir
    assert inference["training_config"]["student"] == "mobilenet_v3_small"
    assert inference["training_config"]["image_size"] == 32 and inference["training_config"]["modality"] == "ultrasound"


def test_prepare_label_bundle_rejects_a_checkpoint_that_does_not_fit(run_dir, tmp_path):
    out, _ = run_dir
    torch.save(StudentClassifier("resnet18", 3).state_dict(), out / "model.pt")  # run says mobilenet_v3_small
    with pytest.raises(RuntimeError, match="does not fit"):
        prepare_label_bundle(BUNDLE, out, tmp_path / "dest")
    assert not (tmp_path / "dest" / "models" / "model.pt").exists()
    with pytest.raises(FileNotFoundError, match="train the bundle first"):
        prepare_label_bundle(BUNDLE, tmp_path, tmp_path / "dest")


def test_cli_label_bundle(run_dir, tmp_path, capsys):
    out, _ = run_dir
    assert cli_main(["label-bundle", "--output_dir", str(out), "--dest", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "models" / "model.pt").is_file()
    assert "MONAI Label bundle ready" in capsys.readouterr().out


def test_read_class_label_formats(tmp_path):
    cases = {"a.txt": "Malignant\n", "b.txt": "2", "c.json": '{"label": "benign"}', "d.json": '{"label": 1}'}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    assert [read_class_label(tmp_path / n, CLASSES) for n in cases] == [1, 2, 0, 1]
    (tmp_path / "bad.txt").write_text("tumour")
    with pytest.raises(ValueError, match="bad.txt.*tumour"):
        read_class_label(tmp_path / "bad.txt", CLASSES)
    items = [{"image": "x.png", "label": str(tmp_path / "a.txt")}, {"image": "y.png", "label": None}]
    assert classification_datalist(items, CLASSES) == [{"image": "x.png", "label": 1}]

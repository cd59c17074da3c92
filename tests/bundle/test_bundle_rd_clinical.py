"""rd_clinical trains RD straight from a folder of DICOM series or NIfTI volumes, through the MONAI CLI."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import BUNDLES, run_bundle
from tests.helpers.weights import random_resnet18_weights

TRAIN = os.path.join(BUNDLES, "rd_clinical", "configs", "train.json")
PHI = (b"CompressedSamples", b"1CT1")  # PatientName / PatientID of pydicom's CT_small.dcm, copied in every slice


def _train(dataset_dir, out, cwd, **overrides):
    return run_bundle(
        TRAIN, cwd=cwd, dataset_dir=dataset_dir, output_dir=out, max_epochs=1, image_size=32, batch_size=8,
        num_workers=0, progress_bar=False, teacher="resnet50", teacher_weights="random", student="resnet18",
        **overrides,
    )  # fmt: skip


def _check_outputs(out, n_items):
    import torch

    from monai_rd.networks import StudentClassifier

    datalist = json.load(open(os.path.join(out, "datalist.json")))
    assert len(datalist["training"]) + len(datalist["validation"]) + len(datalist["test"]) == n_items
    assert datalist["classes"] == ["lesion", "normal"]
    state = torch.load(os.path.join(out, "model.pt"), weights_only=True)
    StudentClassifier("resnet18", 2).load_state_dict(state, strict=True)
    executed = json.load(open(os.path.join(out, "executed_config.json")))
    return datalist, executed


@pytest.mark.slow
def test_trains_from_dicom_series(dicom_series_dir, tmp_path):
    out = str(tmp_path / "out")
    _train(dicom_series_dir, out, tmp_path, slice_mode="all")
    datalist, executed = _check_outputs(out, 2 * 4 * 4)
    assert executed["slice_mode"] == "all"
    assert {i["slice"] for i in datalist["training"]} == {-1}
    for root, _, files in os.walk(out):  # datalist, executed config, MLflow database, checkpoint
        for name in files:
            blob = _recorded_bytes(os.path.join(root, name))
            for phi in PHI:
                assert phi not in blob, (name, phi)


def _recorded_bytes(path: str) -> bytes:
    """What a file records, less raw tensor storage: PHI can only arrive as text (pickled strings, JSON, SQLite rows,
    ONNX metadata), while megabytes of random float bytes hold any 4-byte string such as ``1CT1`` by chance (a
    resume checkpoint did, inside a conv weight)."""
    import zipfile

    if path.endswith(".pt") and zipfile.is_zipfile(path):  # torch.save: data.pkl + one raw storage per tensor
        with zipfile.ZipFile(path) as z:
            return b"".join(z.read(i) for i in z.infolist() if not re.search(r"/data/\d+$", i.filename))
    if path.endswith(".onnx"):
        import onnx

        model = onnx.load(path)
        for tensor in model.graph.initializer:
            tensor.ClearField("raw_data")
        return model.SerializeToString()
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.slow
def test_trains_from_nifti_volumes(nifti_dir, tmp_path):
    out = str(tmp_path / "out")
    _train(nifti_dir, out, tmp_path, slice_mode="foreground", slice_axis="axial")
    datalist, executed = _check_outputs(out, 2 * 4 * 4)  # 6 axial slices minus the 2 empty ones
    assert executed["slice_axis"] == "axial"
    assert {i["slice"] for i in datalist["training"]} == {1, 2, 3, 4}


def test_same_structure_and_override_ids_as_rd_busi():
    busi = json.load(open(os.path.join(BUNDLES, "rd_busi", "configs", "train.json")))
    clinical = json.load(open(TRAIN))
    # every rd_busi override id works here too, but the public-layout indexer and modality preset of rd_busi
    # (rd_clinical indexes class folders of DICOM/NIfTI/images and sets intensities with its own ids)
    assert set(busi) - {"dataset_format", "modality"} <= set(clinical)
    for section in ("train", "validate"):
        assert set(busi[section]) == set(clinical[section])
        assert (
            busi[section]["trainer" if section == "train" else "evaluator"]
            == clinical[section]["trainer" if section == "train" else "evaluator"]
        )
    registry = [i for i, h in enumerate(busi["train"]["handlers"])
                if isinstance(h, dict) and h["_target_"].endswith("RegistryHandler")]  # fmt: skip
    for i, (b, c) in enumerate(zip(busi["train"]["handlers"], clinical["train"]["handlers"], strict=True)):
        if i in registry:  # the input shape follows spatial_dims; volumes get no 2D-image pyfunc server
            assert c["input_shape"] == "$[@in_channels] + [@image_size] * @spatial_dims"
            assert c["serving"].pop("_disabled_") == "$@spatial_dims == 3"
            b, c = {**b, "input_shape": None}, {**c, "input_shape": None}
        assert b == c
    data_ids = {
        "slice_mode",
        "slice_axis",
        "slice_threshold",
        "slice_min_fraction",
        "multi_series",
        "dicom_voi",
        "dicom_window",
        "nifti_volume_index",
        "intensity_percentiles",
        "reader",
        "spatial_dims",
        "in_channels",
    }
    assert set(clinical) - set(busi) == data_ids


def test_reader_options_reach_the_readers():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(TRAIN)
    parser.update({"dicom_voi": True, "dicom_window": [40, 400], "slice_axis": "coronal", "nifti_volume_index": 0})
    reader = parser.get_parsed_content("reader")
    assert reader.readers["dicom"].voi is True and reader.readers["dicom"].window == (40, 400)
    assert reader.readers["nifti"].slice_axis == "coronal" and reader.readers["nifti"].volume_index == 0


@pytest.mark.slow
def test_spatial_dims_3_trains_a_3d_student_on_whole_volumes(nifti_dir, tmp_path):
    """``--spatial_dims 3``: one item per NIfTI volume, a 2D teacher applied slice-wise, a MONAI 3D student; then
    evaluate.json and inference.json (a NIfTI file and a DICOM series folder) remember the 3D training."""
    import csv
    import shutil
    import sqlite3

    import torch

    from monai_rd.data.synthetic import write_dicom_series
    from monai_rd.networks import StudentClassifier

    weights = random_resnet18_weights(tmp_path / "resnet18.pth")
    out = str(tmp_path / "out")
    run_bundle(TRAIN, cwd=str(tmp_path), dataset_dir=nifti_dir, output_dir=out, spatial_dims=3, max_epochs=1,
               image_size=32, batch_size=2, num_workers=0, progress_bar=False,
               teacher="slicewise:torchvision:resnet18", teacher_weights=weights)  # fmt: skip
    datalist = json.load(open(os.path.join(out, "datalist.json")))
    items = [it for split in ("training", "validation", "test") for it in datalist[split]]
    assert len(items) == 8 and all(it["slice"] == -1 and it["image"].endswith(".nii.gz") for it in items)
    state = torch.load(os.path.join(out, "model.pt"), weights_only=True)
    StudentClassifier("monai:resnet10", 2, spatial_dims=3, in_channels=1).load_state_dict(state, strict=True)
    executed = json.load(open(os.path.join(out, "executed_config.json")))
    assert (executed["spatial_dims"], executed["in_channels"], executed["slice_mode"]) == (3, 1, "volume")
    db = sqlite3.connect(os.path.join(out, "mlruns.db"))
    params = dict(db.execute("select key, value from params").fetchall())
    metrics = {k for (k,) in db.execute("select distinct key from metrics").fetchall()}
    assert params["spatial_dims"] == "3" and params["student"] == "monai:resnet10"
    assert {"val_accuracy", "test_accuracy"} <= metrics

    config = os.path.dirname(TRAIN)
    run_bundle([TRAIN, os.path.join(config, "evaluate.json")], cwd=str(tmp_path), output_dir=out, num_workers=0)
    assert os.path.isfile(os.path.join(out, "eval", "test", "metrics.csv"))

    samples = tmp_path / "samples"
    samples.mkdir()
    first = next(it["image"] for it in items)
    shutil.copy(first, samples / "a.nii.gz")
    write_dicom_series(str(samples / "patient1" / "series1"), n_slices=6, size=32)
    run_bundle(os.path.join(config, "inference.json"), cwd=str(tmp_path), output_dir=out, input_dir=str(samples),
               num_workers=0)  # fmt: skip
    rows = list(csv.DictReader(open(os.path.join(out, "predictions.csv"))))
    assert sorted(os.path.basename(r["file"]) for r in rows) == ["a.nii.gz", "series1"]

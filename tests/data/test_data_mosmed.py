"""MosMedData indexer, the synthetic writer, and the CT volume preset."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImaged

from monai_rd.data import MedicalImageReader, index_dataset, index_mosmed
from monai_rd.data.synthetic import make_mosmed_like, write_chest_ct_volume
from monai_rd.transforms import load_preset


@pytest.fixture(scope="module")
def mosmed(tmp_path_factory):
    return make_mosmed_like(tmp_path_factory.mktemp("mosmed"), n_per_grade=5, shape=(24, 24, 8))


def test_index_severity_and_binary(mosmed):
    dl = index_dataset("mosmed", mosmed)
    assert dl["classes"] == ["CT-0", "CT-1", "CT-2", "CT-3", "CT-4"] and dl["split"] == "seeded"
    splits = [dl[k] for k in ("training", "validation", "test")]
    paths = [{it["image"] for it in s} for s in splits]
    assert sum(len(p) for p in paths) == 25 and not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    for s in splits:  # stratified: every grade on every side
        assert sorted({it["grade"] for it in s}) == dl["classes"]
    for it in dl["training"]:
        assert it["label"] == int(it["grade"][-1]) and os.path.basename(it["image"]).startswith(it["group"])
    binary = index_mosmed(mosmed, labeling="binary")
    assert binary["classes"] == ["normal", "abnormal"]
    assert all(
        it["label"] == int(it["grade"] != "CT-0") for s in ("training", "validation", "test") for it in binary[s]
    )
    assert binary["test"] == [] or {it["image"] for it in binary["test"]} == paths[2]  # same seeded split
    assert index_mosmed(mosmed)["split_hash"] == dl["split_hash"]


def test_index_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="studies"):
        index_mosmed(tmp_path)
    root = make_mosmed_like(tmp_path / "m", n_per_grade=2, shape=(8, 8, 4))
    open(os.path.join(root, "studies", "CT-2", "notes.txt"), "w").close()
    with pytest.raises(ValueError, match="notes.txt"):
        index_mosmed(root)
    os.remove(os.path.join(root, "studies", "CT-2", "notes.txt"))
    bad = os.path.join(root, "studies", "CT-3", "study_0999.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.int16), np.eye(4)), bad)
    with pytest.raises(ValueError, match="study_0999.nii.gz"):
        index_mosmed(root)
    with pytest.raises(ValueError, match="labeling"):
        index_mosmed(root, labeling="grades")


def test_ct_volume_preset(tmp_path):
    load = LoadImaged("image", reader=MedicalImageReader(), image_only=True, ensure_channel_first=True)
    out = {}
    for grade in ("CT-0", "CT-4"):
        path = write_chest_ct_volume(tmp_path / f"{grade}.nii.gz", grade, shape=(40, 40, 16), seed=1)
        data = load({"image": path})
        y = load_preset("ct_volume", "eval", image_size=32)(data)["image"]
        assert tuple(y.shape) == (1, 32, 32, 32) and y.dtype == torch.float32
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        again = load_preset("ct_volume", "eval", image_size=32)(load({"image": path}))["image"]
        np.testing.assert_array_equal(np.asarray(y), np.asarray(again))
        out[grade] = y
        # the HU window by hand: -1000 .. 1000 HU -> 0 .. 1, clipped
        raw = nib.load(path).get_fdata()
        assert float(y.max()) <= (min(raw.max(), 1000) + 1000) / 2000 + 1e-6
    # ground glass (-300 HU) replaces lung (-850 HU): CT-4 is brighter on average inside the body crop
    assert float(out["CT-4"].mean()) > float(out["CT-0"].mean()) + 0.02
    train = load_preset("ct_volume", "train", image_size=32)
    train.set_random_state(seed=0)
    assert tuple(train(load({"image": str(tmp_path / "CT-0.nii.gz")}))["image"].shape) == (1, 32, 32, 32)


def test_list_volumes(tmp_path):
    from monai_rd.data import list_volumes
    from monai_rd.data.synthetic import write_dicom_series

    write_chest_ct_volume(tmp_path / "b.nii.gz", "CT-1", shape=(8, 8, 4))
    write_dicom_series(str(tmp_path / "p1" / "s1"), n_slices=3, size=16)
    assert [os.path.relpath(i["image"], tmp_path) for i in list_volumes(tmp_path)] == ["b.nii.gz", "p1/s1"]
    open(tmp_path / "p1" / "notes.txt", "w").close()
    with pytest.raises(ValueError, match="notes.txt"):
        list_volumes(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No volume"):
        list_volumes(tmp_path / "empty")

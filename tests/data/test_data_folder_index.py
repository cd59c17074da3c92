"""index_class_folders / index_csv on fabricated DICOM-series, NIfTI and image datasets, and malformed ones."""

from __future__ import annotations

import os
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest

from monai.transforms import Compose, LoadImaged
from PIL import Image
from pydicom.data import get_testdata_file

from monai_rd.data import (
    DicomReadError,
    MedicalImageReader,
    UnsupportedFileError,
    grouped_stratified_split,
    index_class_folders,
    index_csv,
    write_dicom_series,
    write_nifti_volume,
)
from monai_rd.transforms import ExtractSliced

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def all_items(datalist):
    return datalist["training"] + datalist["validation"] + datalist["test"]


def assert_groups_on_one_side(datalist):
    train, val, test = ({i["group"] for i in datalist[k]} for k in ("training", "validation", "test"))
    assert train and val and test and not train & val and not (train | val) & test


def load_items(items, slice_axis="axial"):
    pipeline = Compose(
        [
            LoadImaged(
                "image",
                reader=MedicalImageReader(nifti={"slice_axis": slice_axis}),
                image_only=True,
                ensure_channel_first=True,
            ),
            ExtractSliced("image"),
        ]
    )
    return [pipeline(dict(i))["image"] for i in items]


def test_dicom_series_all_slices_grouped_by_patient(dicom_series_dir, tmp_path):
    dl = index_class_folders(dicom_series_dir, slice_mode="all", seed=1, datalist_file=tmp_path / "dl.json")
    items = all_items(dl)
    assert dl["classes"] == ["lesion", "normal"]
    assert len(items) == 2 * 4 * 4 and all(i["slice"] == -1 for i in items)
    assert_groups_on_one_side(dl)
    val_groups = {(i["class_name"], i["group"]) for i in dl["validation"]}
    assert sorted(c for c, _ in val_groups) == ["lesion", "normal"]  # one patient of 4 per class (0.2 * 4)
    assert os.path.isfile(tmp_path / "dl.json")
    # slices of one series are listed in position order
    series = [i for i in items if i["group"] == "normal/patient0"]
    z = [float(pydicom.dcmread(i["image"]).ImagePositionPatient[2]) for i in series]
    assert z == sorted(z) and len(z) == 4
    images = load_items(series[:2])
    assert all(tuple(im.shape) == (1, 32, 32) for im in images)
    # same seed, same split; another seed, another split
    assert index_class_folders(dicom_series_dir, slice_mode="all", seed=1)["split_hash"] == dl["split_hash"]


def test_dicom_series_middle_and_foreground(dicom_series_dir):
    middle = all_items(index_class_folders(dicom_series_dir, slice_mode="middle"))
    assert len(middle) == 8
    for item in middle:
        assert float(pydicom.dcmread(item["image"]).ImagePositionPatient[2]) == 10.0  # z = 0, 5, [10], 15
    from monai_rd.data import expand_source

    # only the lesion slices (k = 1, 2 of 4) have >= 10 % of pixels above 300 HU (CT_small alone: 6 %)
    lesion = os.path.join(dicom_series_dir, "lesion", "patient0")
    fg = expand_source(lesion, slice_mode="foreground", slice_threshold=300.0, slice_min_fraction=0.1)
    z = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f, _ in fg]
    assert z == [5.0, 10.0]
    # a volume without any foreground slice is an error naming it, never silently dropped
    normal = os.path.join(dicom_series_dir, "normal", "patient0")
    with pytest.raises(ValueError, match=r"normal/patient0/series1': No slice has at least 0.1"):
        expand_source(normal, slice_mode="foreground", slice_threshold=300.0, slice_min_fraction=0.1)


def test_nifti_volumes_expand_to_slices(nifti_dir):
    dl = index_class_folders(nifti_dir, slice_mode="foreground", slice_axis="axial")
    items = all_items(dl)
    assert len(items) == 8 * 4  # 6 axial slices, the two empty end slices dropped
    assert sorted({i["slice"] for i in items}) == [1, 2, 3, 4]
    assert_groups_on_one_side(dl)
    item = next(i for i in items if i["slice"] == 2)
    image = load_items([item])[0]
    assert tuple(image.shape) == (1, 24, 20)
    stored = np.asarray(nib.load(item["image"]).dataobj)  # LAS: column w of the display = stored x index w
    np.testing.assert_allclose(image[0].numpy(), stored[:, ::-1, 2].T, rtol=1e-6)
    middle = all_items(index_class_folders(nifti_dir, slice_mode="middle", slice_axis="coronal"))
    assert {i["slice"] for i in middle} == {12}


def test_mixed_sources_in_one_dataset(tmp_path):
    root = tmp_path / "mixed"
    for c in ("a", "b"):
        os.makedirs(root / c)
        Image.fromarray(np.full((16, 20), 100, np.uint8)).save(root / c / "photo.png")
        shutil.copy(get_testdata_file("MR_small.dcm"), root / c / "mr.dcm")
        write_nifti_volume(str(root / c / "vol.nii.gz"), shape=(10, 12, 4), with_empty_slices=False)
        shutil.copy(get_testdata_file("examples_ybr_color.dcm"), root / c / "cine")  # no suffix, 30 frames
    dl = index_class_folders(root, slice_mode="middle", val_fraction=0.5)
    items = all_items(dl)
    kinds = sorted((os.path.basename(i["image"]), i["slice"]) for i in items if i["class_name"] == "a")
    assert kinds == [("cine", 15), ("mr.dcm", -1), ("photo.png", -1), ("vol.nii.gz", 2)]
    shapes = sorted(tuple(im.shape) for im in load_items([i for i in items if i["class_name"] == "a"]))
    assert shapes == [(1, 12, 10), (1, 16, 20), (1, 64, 64), (3, 240, 320)]


def test_malformed_folders_say_what_was_expected(tmp_path, dicom_series_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index_class_folders(tmp_path / "nope")
    root = tmp_path / "d"
    os.makedirs(root / "a")
    (root / "labels.csv").write_text("x")
    with pytest.raises(ValueError, match=r"only one folder per class; unexpected file\(s\) \['labels.csv'\]"):
        index_class_folders(root)
    os.remove(root / "labels.csv")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "a" / "x.png")
    with pytest.raises(ValueError, match="at least two are needed"):
        index_class_folders(root)
    os.makedirs(root / "b")
    with pytest.raises(FileNotFoundError, match="is empty"):
        index_class_folders(root)
    (root / "b" / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedFileError, match=r"notes\.txt' is not a supported input"):
        index_class_folders(root)
    with pytest.raises(ValueError, match="do not match classes"):
        index_class_folders(dicom_series_dir, classes=["normal", "lesion", "other"])
    shutil.copy(get_testdata_file("MR_truncated.dcm"), root / "b" / "notes.txt")
    os.rename(root / "b" / "notes.txt", root / "b" / "cut.dcm")
    with pytest.raises(DicomReadError, match=r"cut\.dcm' is truncated"):
        index_class_folders(root)


def test_folder_with_two_series_is_refused_unless_asked(tmp_path):
    root = tmp_path / "d"
    for c in ("a", "b"):
        write_dicom_series(str(root / c / "p0"), n_slices=2, series_uid=None, seed=1)
        write_dicom_series(str(root / c / "p0" / "other"), n_slices=2, seed=2)
        write_dicom_series(str(root / c / "p1"), n_slices=2, seed=3)
    # sub-folders are separate series folders: fine, grouped under p0
    dl = index_class_folders(root, slice_mode="all", val_fraction=0.5)
    assert sum(i["group"] == "a/p0" for i in all_items(dl)) == 4
    # a second series in one folder
    write_dicom_series(str(root / "a" / "p1"), n_slices=2, seed=4, z0=100.0, prefix="B")
    with pytest.raises(DicomReadError, match=r"(?s)p1' holds 2 series.*modality=CT"):
        index_class_folders(root, slice_mode="all")
    dl = index_class_folders(root, slice_mode="all", multi_series="all", val_fraction=0.5)
    assert sum(i["group"] == "a/p1" for i in all_items(dl)) == 4


def test_csv_index_with_hashed_patient_groups(tmp_path, nifti_dir):
    lines = ["path,diagnosis,patient"]
    for c in ("normal", "lesion"):
        for s in range(4):
            lines.append(f"{c}/subject{s}.nii.gz,{c},PAT-{c}-{min(s, 2)}")  # subjects 2 and 3: one patient
    csv_file = os.path.join(nifti_dir, "labels.csv")
    with open(csv_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        dl = index_csv(
            csv_file,
            image_column="path",
            label_column="diagnosis",
            group_column="patient",
            classes=["normal", "lesion"],
            slice_mode="middle",
            val_fraction=0.5,
        )
    finally:
        os.remove(csv_file)
    items = all_items(dl)
    assert dl["classes"] == ["normal", "lesion"] and len(items) == 8
    assert all(i["label"] == ["normal", "lesion"].index(i["class_name"]) for i in items)
    assert len({i["group"] for i in items}) == 6 and not any("PAT" in i["group"] for i in items)
    assert_groups_on_one_side(dl)


def test_csv_malformed(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    cases = {
        "image,class\na.png,x\n": r"columns \['label'\] not found",
        "image,label\n": "has a header but no row",
        "image,label\na.png,\n": r"line 2: empty 'label'",
        "image,label\na.png,x\nmissing.png,y\n": r"line 3: .*missing\.png' does not exist",
        "image,label\na.png,x\n": "at least two are needed",
    }
    for text, message in cases.items():
        (tmp_path / "l.csv").write_text(text)
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            index_csv(tmp_path / "l.csv")
    (tmp_path / "l.csv").write_text("image,label\na.png,x\na.png,y\n")
    with pytest.raises(ValueError, match=r"labels \['y'\] are not in classes"):
        index_csv(tmp_path / "l.csv", classes=["x", "z"])
    (tmp_path / "l.csv").write_text("image,label,pid\na.png,x,1\na.png,y,1\n")
    with pytest.raises(ValueError, match="holds items of several classes"):
        index_csv(tmp_path / "l.csv", group_column="pid")


def test_grouped_split_is_stratified_and_seeded():
    labels = [0] * 20 + [1] * 10
    groups = [f"g{i // 2}" for i in range(30)]  # pairs
    train, val = grouped_stratified_split(labels, groups, val_fraction=0.2, seed=3)
    assert sorted(train + val) == list(range(30))
    assert not {groups[i] for i in train} & {groups[i] for i in val}
    assert sum(labels[i] == 0 for i in val) == 4 and sum(labels[i] == 1 for i in val) == 2
    assert grouped_stratified_split(labels, groups, 0.2, seed=3) == (train, val)
    assert grouped_stratified_split(labels, groups, 0.2, seed=4) != (train, val)


def test_4d_nifti_sliced_on_one_volume(tmp_path):
    example4d = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "example4d.nii.gz")
    for c in ("a", "b"):
        os.makedirs(tmp_path / "d" / c)
        for s in range(2):
            shutil.copy(example4d, tmp_path / "d" / c / f"run{s}.nii.gz")
    dl = index_class_folders(tmp_path / "d", slice_mode="middle", nifti_volume_index=1, val_fraction=0.5)
    items = all_items(dl)
    assert len(items) == 4 and {i["slice"] for i in items} == {12}
    pipeline = Compose(
        [
            LoadImaged(
                "image",
                reader=MedicalImageReader(nifti={"slice_axis": "axial", "volume_index": 1}),
                image_only=True,
                ensure_channel_first=True,
            ),
            ExtractSliced("image"),
        ]
    )
    image = pipeline(dict(items[0]))["image"]
    canonical = nib.as_closest_canonical(nib.load(example4d)).get_fdata()[..., 1]
    assert tuple(image.shape) == (1, 96, 128)
    np.testing.assert_allclose(image[0].numpy(), canonical[:, :, 12].T[::-1, ::-1], rtol=1e-6)


def test_volume_mode_indexes_whole_volumes_and_refuses_2d(tmp_path, nifti_dir, dicom_series_dir):
    """``slice_mode="volume"`` (3D students): one item per NIfTI file or DICOM series folder, read whole by the
    reader; 2D images are refused by name, and so is a folder whose several series the reader could not tell apart."""
    dl = index_class_folders(nifti_dir, slice_mode="volume", val_fraction=0.25, test_fraction=0.25)
    items = all_items(dl)
    assert len(items) == 8 and all(i["slice"] == -1 and i["image"].endswith(".nii.gz") for i in items)
    volume = MedicalImageReader().get_data(MedicalImageReader().read(items[0]["image"]))[0]
    assert volume.shape == nib.load(items[0]["image"]).shape  # the whole [X, Y, Z] volume, not a slice

    dl = index_class_folders(dicom_series_dir, slice_mode="volume", val_fraction=0.25, test_fraction=0.25)
    items = all_items(dl)
    assert len(items) == 8 and all(os.path.isdir(i["image"]) for i in items)
    series = MedicalImageReader().get_data(MedicalImageReader().read(items[0]["image"]))[0]
    assert series.ndim == 3 and 4 in series.shape  # 4 slices of 32 px

    images = tmp_path / "png"
    for c in ("a", "b"):
        (images / c).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(images / c / "x.png")
    with pytest.raises(ValueError, match=r"x\.png' is a 2D image.*spatial_dims 2"):
        index_class_folders(images, slice_mode="volume")
    two = tmp_path / "two"
    for c in ("a", "b"):
        write_dicom_series(str(two / c / "p0"), n_slices=2, seed=1)
        write_dicom_series(str(two / c / "p0"), n_slices=2, seed=2, z0=100.0, prefix="B")
    with pytest.raises(ValueError, match="each series needs its own folder"):
        index_class_folders(two, slice_mode="volume", multi_series="all")
    with pytest.raises(DicomReadError, match="holds 2 series"):
        index_class_folders(two, slice_mode="volume")

"""One reader path: what ``validate_datalist`` accepts is decoded to the same array by every bundle's training
``LoadImaged``; and ``check_readable`` speaks the same vocabulary (``BadInputError``, ``on_bad_input``)."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from monai.bundle import ConfigParser
from monai.transforms import LoadImaged
from PIL import Image, ImageOps
from pydicom import dcmread
from pydicom.data import get_testdata_file

from monai_rd.data import BadInputError, MedicalImageReader, UnreadableInputsError, check_readable, validate_datalist
from tests.conftest import BUNDLES
from monai_rd.bundle import bundle_names

BUNDLE_NAMES = bundle_names()  # every bundle, rd_mosmed included: the one list is monai_rd.bundle.bundle_names


def _natural_files(folder) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (path, the [C, H, W] array an independent PIL decode gives, rows first, EXIF applied)."""
    rng = np.random.default_rng(0)
    out = {}
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "rgb.png")
    out["rgb.png"] = rgb
    grey16 = rng.integers(0, 65536, (24, 40), dtype=np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    out["grey16.png"] = grey16
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(folder / "palette.png")
    out["palette.png"] = np.asarray(palette.convert("RGB"))
    photo = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a phone photograph held upright
    photo.save(folder / "rotated.jpg", exif=exif, quality=95)
    with Image.open(folder / "rotated.jpg") as im:
        out["rotated.jpg"] = np.asarray(ImageOps.exif_transpose(im))
    arrays = {}
    for name, arr in out.items():
        arr = arr.astype(np.float32)
        arrays[name] = (str(folder / name), arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0))
    return arrays


def _training_loader(bundle: str) -> LoadImaged:
    """The first transform of the bundle's own ``train::preprocessing``, built from its train.json."""
    parser = ConfigParser()
    parser.read_config(os.path.join(BUNDLES, bundle, "configs", "train.json"))
    loader = parser.get_parsed_content("train::preprocessing::transforms::0")
    assert isinstance(loader, LoadImaged), type(loader)
    return loader


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_validated_file_decodes_identically_in_training(bundle, tmp_path):
    files = _natural_files(tmp_path)
    items = [{"image": path, "label": i % 2} for i, (path, _) in enumerate(files.values())]
    datalist = {"training": items, "validation": items[:2], "classes": ["a", "b"]}
    assert validate_datalist(datalist)["training"] == items  # every file is accepted
    loader = _training_loader(bundle)
    for name, (path, expected) in files.items():
        image = np.asarray(loader({"image": path})["image"])
        assert image.shape == expected.shape, (bundle, name, image.shape)
        np.testing.assert_array_equal(image, expected, err_msg=f"{bundle}: {name}")


@pytest.mark.parametrize("bundle", ("rd_chestxray", "rd_clinical"))
def test_validated_dicom_decodes_identically_in_training(bundle):
    path = get_testdata_file("CT_small.dcm")
    datalist = {"training": [{"image": path, "label": 0}, {"image": path, "label": 1}]}
    datalist["validation"] = datalist["training"]
    assert validate_datalist(datalist, class_names=["a", "b"]) == datalist
    ds = dcmread(path)  # independent: pydicom pixels through the stored rescale
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    image = np.asarray(_training_loader(bundle)({"image": path})["image"])
    assert image.shape == (1, *expected.shape)
    np.testing.assert_allclose(image[0], expected, rtol=0, atol=1e-3)


def test_check_readable_lists_every_bad_file(mixed_folder, tmp_path):
    items = [{"image": str(p)} for p in sorted(mixed_folder.iterdir())] + [{"image": str(tmp_path / "missing.png")}]
    loader = LoadImaged(keys="image", reader=MedicalImageReader(), image_only=True, ensure_channel_first=True)
    errors_file = tmp_path / "errors.csv"
    with pytest.raises(BadInputError) as info:
        check_readable(items, loader, errors_file=errors_file)
    message = str(info.value)
    assert "3 of 5" in message and "on_bad_input" in message
    for name in ("c_corrupt.png", "d_empty.png", "missing.png"):
        assert name in message
    assert "good" not in message
    assert sorted(os.path.basename(f) for f in info.value.errors) == ["c_corrupt.png", "d_empty.png", "missing.png"]
    rows = list(csv.DictReader(open(errors_file)))
    assert sorted(os.path.basename(r["file"]) for r in rows) == ["c_corrupt.png", "d_empty.png", "missing.png"]
    assert {os.path.basename(r["file"]): r["error"] for r in rows}["d_empty.png"] == "empty file (0 bytes)"

    good = check_readable(items, loader, errors_file=errors_file, on_bad_input="skip")
    assert [os.path.basename(i["image"]) for i in good] == ["a good.png", "b_good.jpg"]
    check_readable(good, loader, errors_file=errors_file)  # a clean run removes a stale error list
    assert not errors_file.exists()
    with pytest.raises(BadInputError, match="2 of 2"):
        check_readable(items[2:4], loader, on_bad_input="skip")  # nothing readable is an error even when skipping


def test_one_vocabulary(tmp_path):
    assert UnreadableInputsError is BadInputError  # the old inference name is the same class
    items = [{"image": str(tmp_path / "x.png")}]
    for check in (
        lambda v: check_readable(items, lambda d: d, on_bad_input=v),
        lambda v: validate_datalist({"training": [], "validation": []}, on_bad_input=v),
    ):
        with pytest.raises(ValueError, match="on_bad_input must be one of"):
            check("raise")  # the retired vocabulary is refused by name, not taken as "skip"


def _non_finite_files(folder):
    """A float TIFF with 1 Inf and 1 NaN pixel, a NIfTI volume with 2 NaN voxels, a clean NIfTI and a clean PNG."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    image = rng.random((32, 32), dtype=np.float32)
    image[1, 2], image[3, 4] = np.inf, np.nan
    Image.fromarray(image, mode="F").save(folder / "inf.tif")
    volume = rng.random((32, 32, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / "clean.nii.gz")
    volume[5, 5, 1] = volume[6, 6, 2] = np.nan
    nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / "nan.nii.gz")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(folder / "clean.png")
    return folder


def test_check_readable_refuses_nan_and_inf_images_by_name(tmp_path):
    folder = _non_finite_files(tmp_path)
    items = [{"image": str(p)} for p in sorted(folder.iterdir())]
    loader = LoadImaged(keys="image", reader=MedicalImageReader(), image_only=True, ensure_channel_first=True)
    errors_file = tmp_path / "errors.csv"
    with pytest.raises(BadInputError, match="2 of 4") as info:
        check_readable(items, loader, errors_file=errors_file)
    assert sorted(os.path.basename(f) for f in info.value.errors) == ["inf.tif", "nan.nii.gz"]
    rows = {os.path.basename(r["file"]): r["error"] for r in csv.DictReader(open(errors_file))}
    assert rows["inf.tif"].startswith("holds NaN/Inf pixel values (2 of 1024 ")  # 32 x 32, counted by hand
    assert rows["nan.nii.gz"].startswith("holds NaN/Inf pixel values (2 of 4096 ")  # 32 x 32 x 4
    good = check_readable(items, loader, errors_file=errors_file, on_bad_input="skip")
    assert [os.path.basename(i["image"]) for i in good] == ["clean.nii.gz", "clean.png"]


def test_check_readable_keeps_the_rows_of_an_earlier_check_of_the_run(tmp_path):
    folder = _non_finite_files(tmp_path / "in")
    errors_file = tmp_path / "errors.csv"
    first = "file,error\n/x/broken.dcm,DicomReadError: not a DICOM file\n"
    errors_file.write_text(first)  # what the first check of the run (expand_inputs) wrote
    loader = LoadImaged(keys="image", reader=MedicalImageReader(), image_only=True, ensure_channel_first=True)
    items = [{"image": str(folder / n)} for n in ("clean.png", "nan.nii.gz")]
    check_readable(items, loader, errors_file=errors_file, on_bad_input="skip", keep_listed=True)
    rows = {r["file"]: r["error"] for r in csv.DictReader(open(errors_file))}
    assert set(rows) == {"/x/broken.dcm", str(folder / "nan.nii.gz")}
    errors_file.write_text(first)
    check_readable(items[:1], loader, errors_file=errors_file, keep_listed=True)  # nothing new: the earlier row stays
    assert set(r["file"] for r in csv.DictReader(open(errors_file))) == {"/x/broken.dcm"}
    check_readable(items[:1], loader, errors_file=errors_file)  # a new run (no earlier check) removes a stale list
    assert not errors_file.exists()


def test_clinical_inference_lists_files_refused_at_both_checks_before_predicting(tmp_path):
    """rd_clinical's inference.json, parsed as the bundle runs it: a broken DICOM is refused while the folder is
    expanded, a NaN NIfTI by the preprocessing-time check; unreadable_inputs.csv lists both, with their reasons."""
    import json

    import torch

    from monai_rd.bundle import write_executed_config
    from monai_rd.networks import StudentClassifier

    folder = _non_finite_files(tmp_path / "in")
    (folder / "inf.tif").unlink()
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 10)
    out = tmp_path / "out"
    out.mkdir()
    torch.save(StudentClassifier("mobilenet_v3_small", 2).state_dict(), out / "model.pt")
    (out / "datalist.json").write_text(json.dumps({"classes": ["normal", "lesion"], "training": [], "validation": []}))
    configs = os.path.join(BUNDLES, "rd_clinical", "configs")
    write_executed_config(os.path.join(configs, "train.json"),
                          {"student": "mobilenet_v3_small", "image_size": 32, "class_names": ["normal", "lesion"],
                           "spatial_dims": 2, "in_channels": 3}, out / "executed_config.json")  # fmt: skip
    parser = ConfigParser()
    parser.read_config(os.path.join(configs, "inference.json"))
    parser.update({"input_dir": str(folder), "output_dir": str(out), "on_bad_input": "skip", "num_workers": 0})
    inputs = parser.get_parsed_content("inputs")
    assert {os.path.basename(i["image"]) for i in inputs} == {"clean.nii.gz", "clean.png"}
    rows = {os.path.basename(r["file"]): r["error"] for r in csv.DictReader(open(out / "unreadable_inputs.csv"))}
    assert set(rows) == {"broken.dcm", "nan.nii.gz"}
    assert rows["nan.nii.gz"].startswith("holds NaN/Inf pixel values") and rows["broken.dcm"]
    assert not (out / "predictions.csv").exists()


def test_indexers_and_cli_raise_the_one_error_naming_the_file(tmp_path, capsys):
    """Issue 27 (2): the indexers check images with the one validator (``data.checks.verify_image``) and every bad
    input -- an indexer's refusal, a layout refusal, a reader's error -- is a ``BadInputError`` (a ``ValueError``)."""
    from monai_rd.cli import main
    from monai_rd.data import (
        DicomReadError, ImageReadError, NiftiReadError, UnsupportedFileError, index_busi, make_busi_like,
    )  # fmt: skip

    assert all(issubclass(e, BadInputError) for e in (ImageReadError, DicomReadError, NiftiReadError,
                                                     UnsupportedFileError))  # fmt: skip
    assert issubclass(BadInputError, ValueError)
    root = make_busi_like(tmp_path / "busi", n_per_class=3, size=16)
    bad = os.path.join(root, "malignant", "malignant (1).png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(BadInputError, match=r"malignant \(1\)\.png.* in BUSI") as info:
        index_busi(root)
    assert list(info.value.errors) == [bad]
    os.makedirs(os.path.join(root, "cancer"))
    with pytest.raises(BadInputError, match="cancer"):  # a layout refusal: the same type
        index_busi(root, verify_images=False)
    folder = tmp_path / "folders"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(np.full((16, 16), 40 * k, np.uint8)).save(folder / name / f"{k}.png")
    (folder / "b" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    assert main(["index", str(folder), "--out", str(tmp_path / "dl.json")]) == 2
    assert "2.png" in capsys.readouterr().err


def test_an_indexers_refusal_of_a_layout_is_the_one_error_and_a_bad_argument_is_not(tmp_path):
    """Issue 27 (2): what an indexer refuses in the data (a stray file, a single class) is a ``BadInputError`` naming
    the file or folder; a wrong argument value (a programming error, not bad input) stays a plain ``ValueError``."""
    from monai_rd.data import index_busi, index_class_folders, make_busi_like

    root = make_busi_like(tmp_path / "busi", n_per_class=3, size=16)
    stray = os.path.join(root, "benign", "notes.txt")
    open(stray, "w").write("x")
    with pytest.raises(BadInputError, match="notes.txt"):
        index_busi(root, verify_images=False)
    one_class = tmp_path / "one" / "a"
    one_class.mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.full((16, 16), 40 * k, np.uint8)).save(one_class / f"{k}.png")
    with pytest.raises(BadInputError, match="at least two are needed"):
        index_class_folders(tmp_path / "one")
    with pytest.raises(ValueError, match="slice_mode must be one of") as info:
        index_class_folders(root, slice_mode="sideways")
    assert not isinstance(info.value, BadInputError)

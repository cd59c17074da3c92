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

BUNDLE_NAMES = ("rd_busi", "rd_isic", "rd_covid", "rd_btc", "rd_chestxray", "rd_clinical")


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
    for check in (lambda v: check_readable(items, lambda d: d, on_bad_input=v),
                  lambda v: validate_datalist({"training": [], "validation": []}, on_bad_input=v)):
        with pytest.raises(ValueError, match="on_bad_input must be one of"):
            check("raise")  # the retired vocabulary is refused by name, not taken as "skip"

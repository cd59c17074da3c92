"""Hostile input files and datalists: each one is reported naming the file/key, or skipped and recorded."""

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from monai_rd.data import BadInputError, validate_datalist, write_dicom_series, write_nifti_volume
from monai_rd.data.readers.dicom import DicomReadError, DicomReader
from monai_rd.data.readers.natural import ImageReadError, NaturalImageReader
from monai_rd.data.readers.nifti import NiftiReader, NiftiReadError
from monai_rd.transforms import EnsureRGB

CLASSES = ["benign", "malignant"]


def _png(path, size=(16, 16), mode="RGB"):
    rng = np.random.default_rng(0)
    channels = {"L": None, "RGB": 3, "RGBA": 4, "LA": 2}[mode]
    shape = size[::-1] + ((channels,) if channels else ())
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(path)
    return str(path)


@pytest.fixture
def good(tmp_path):
    """Two good PNGs per class and split."""
    items = {"training": [], "validation": []}
    for split in items:
        for label in (0, 1):
            for k in range(2):
                items[split].append({"image": _png(tmp_path / f"{split}_{label}_{k}.png"), "label": label})
    return items


def _with(good, split, item):
    d = {k: list(v) for k, v in good.items()}
    d[split] = d[split] + [item]
    return d


def _expect_error(datalist, *fragments, **kw):
    with pytest.raises(BadInputError) as err:
        validate_datalist(datalist, class_names=CLASSES, **kw)
    for f in fragments:
        assert f in str(err.value), str(err.value)
    return str(err.value)


def test_good_datalist_passes_unchanged(good):
    assert validate_datalist(good, class_names=CLASSES) == good


def test_truncated_png(good, tmp_path):
    path = _png(tmp_path / "trunc.png", size=(64, 64))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    _expect_error(
        _with(good, "training", {"image": path, "label": 0}), "training[4]", "trunc.png", "truncated or corrupt"
    )
    with pytest.raises(ImageReadError, match="trunc.png"):
        reader = NaturalImageReader()
        reader.get_data(reader.read(path))


def test_corrupt_jpeg(good, tmp_path):
    path = tmp_path / "bad.jpg"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path, quality=90)
    data = bytearray(path.read_bytes())
    data[200:] = b"\x00" * (len(data) - 200)  # entropy-coded data wiped
    path.write_bytes(bytes(data[:400]))
    _expect_error(_with(good, "training", {"image": str(path), "label": 1}), "bad.jpg")


def test_garbage_bytes_with_png_name(good, tmp_path):
    path = tmp_path / "noise.png"
    path.write_bytes(os.urandom(300))
    _expect_error(_with(good, "validation", {"image": str(path), "label": 1}), "validation[4]", "noise.png")


def test_truncated_dicom(good, tmp_path):
    folder = write_dicom_series(str(tmp_path / "series"), n_slices=1, size=32)
    path = os.path.join(folder, sorted(os.listdir(folder))[0])
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) - 500])
    _expect_error(_with(good, "training", {"image": path, "label": 0}), os.path.basename(path))
    with pytest.raises(DicomReadError, match=os.path.basename(path)):
        reader = DicomReader()
        reader.get_data(reader.read(path))


def test_truncated_nifti(good, tmp_path):
    path = write_nifti_volume(str(tmp_path / "vol.nii.gz"))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    _expect_error(_with(good, "training", {"image": path, "label": 0}), "vol.nii.gz")
    with pytest.raises(NiftiReadError, match="vol.nii.gz"):
        reader = NiftiReader()
        reader.get_data(reader.read(path))


@pytest.mark.parametrize("name", ["empty.png", "empty.dcm", "empty.nii.gz"])
def test_zero_byte_files(good, tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    _expect_error(_with(good, "training", {"image": str(tmp_path / name), "label": 0}), name, "empty file (0 bytes)")


def test_wrong_channel_counts():
    """Grey+alpha (2) and RGBA (4) are converted by EnsureRGB; 5+ channels are refused naming the file."""
    import torch
    from monai.data import MetaTensor

    assert EnsureRGB()(torch.rand(2, 8, 8)).shape == (3, 8, 8)
    assert EnsureRGB()(torch.rand(4, 8, 8)).shape == (3, 8, 8)
    img = MetaTensor(torch.rand(5, 8, 8), meta={"filename_or_obj": "/data/five.tif"})
    with pytest.raises(ValueError, match="5 channels in '/data/five.tif'"):
        EnsureRGB()(img)


def test_two_channel_png_is_accepted_as_grey_alpha(good, tmp_path):
    path = _png(tmp_path / "la.png", mode="LA")
    assert validate_datalist(_with(good, "training", {"image": path, "label": 0}), class_names=CLASSES)


def test_one_pixel_image(good, tmp_path):
    path = _png(tmp_path / "dot.png", size=(1, 1))
    _expect_error(_with(good, "training", {"image": path, "label": 0}), "dot.png", "1x1 px is below min_size=8")


def test_labels_outside_class_list(good, tmp_path):
    _expect_error(_with(good, "training", {"image": good["training"][0]["image"], "label": 2}),
                  "training[4]", "label 2 is outside the class list (0..1)")  # fmt: skip
    _expect_error(_with(good, "training", {"image": good["training"][0]["image"], "label": -1}), "label -1")
    _expect_error(_with(good, "training", {"image": good["training"][0]["image"], "label": "benign"}), "'label'")
    _expect_error(_with(good, "training", {"image": good["training"][0]["image"]}), "no 'label' key")


def test_multi_hot_labels_checked_against_class_list(tmp_path):
    p = _png(tmp_path / "a.png")
    ok = {
        "training": [{"image": p, "label": [1, 0]}, {"image": p, "label": [0, 1]}],
        "validation": [{"image": p, "label": [1, 1]}],
    }
    assert validate_datalist(ok, class_names=CLASSES)["training"] == ok["training"]
    bad = dict(ok, validation=[{"image": p, "label": [1, 0, 0]}])
    _expect_error(bad, "validation[0]", "3 entries")


def test_missing_file(good, tmp_path):
    _expect_error(
        _with(good, "training", {"image": str(tmp_path / "gone.png"), "label": 0}), "gone.png", "no such file"
    )


def test_empty_and_one_class_splits(good):
    _expect_error(dict(good, validation=[]), "'validation' split is empty")
    _expect_error(dict(good, training=[e for e in good["training"] if e["label"] == 0]), "single class ['benign']")
    _expect_error({"training": good["training"]}, "no 'validation' split")


def test_skip_mode_drops_and_records_bad_entries(good, tmp_path, caplog):
    bad_path = tmp_path / "zero.png"
    bad_path.write_bytes(b"")
    datalist = _with(good, "training", {"image": str(bad_path), "label": 0})
    datalist_file = tmp_path / "datalist.json"
    datalist_file.write_text(json.dumps(datalist))
    with caplog.at_level(logging.WARNING, logger="monai_rd.data.checks"):
        out = validate_datalist(datalist, class_names=CLASSES, on_bad_input="skip", datalist_file=str(datalist_file))
    assert out["training"] == good["training"]  # never trained on
    assert out["skipped"] == [{"split": "training", "index": 4, "image": str(bad_path),
                               "reasons": [f"{str(bad_path)!r}: empty file (0 bytes)"]}]  # fmt: skip
    assert json.loads(datalist_file.read_text())["skipped"] == out["skipped"]
    assert "zero.png" in caplog.text and "skipped" in caplog.text


def test_skip_mode_that_empties_a_split_still_fails(good, tmp_path):
    (tmp_path / "z.png").write_bytes(b"")
    _expect_error(dict(good, validation=[{"image": str(tmp_path / "z.png"), "label": 0}]),
                  "'validation' split is empty after skipping", on_bad_input="skip")  # fmt: skip


def test_every_problem_is_listed_at_once(good, tmp_path):
    d = _with(good, "training", {"image": str(tmp_path / "a.png"), "label": 0})
    d = _with(d, "validation", {"image": str(tmp_path / "b.png"), "label": 5})
    msg = _expect_error(d, "2 unusable datalist entries", "a.png", "b.png", "label 5")
    assert "on_bad_input" in msg


def test_thin_volume_is_fine_but_a_tiny_plane_is_not(good, tmp_path):
    thin = write_nifti_volume(str(tmp_path / "thin.nii.gz"), shape=(20, 24, 3))
    assert validate_datalist(_with(good, "training", {"image": thin, "label": 0}), class_names=CLASSES)
    tiny = write_nifti_volume(str(tmp_path / "tiny.nii.gz"), shape=(20, 4, 3), with_empty_slices=False)
    _expect_error(_with(good, "training", {"image": tiny, "label": 0}), "tiny.nii.gz", "below min_size=8")

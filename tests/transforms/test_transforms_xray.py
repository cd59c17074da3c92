"""X-ray: MONOCHROME1 inversion (by metadata, flag, and on pydicom's real MONOCHROME1 CR file) and CLAHE against
OpenCV's createCLAHE as the trusted reference."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor

from monai_rd.transforms import (
    CLAHE,
    CLAHEd,
    InvertMonochrome1,
    InvertMonochrome1d,
    load_preset,
    photometric_interpretation,
)

PYDICOM_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
CR_MONOCHROME1 = os.path.join(PYDICOM_FILES, "dicomdirtests", "77654033", "CR1", "6154")  # 12-bit MONOCHROME1


def test_photometric_interpretation_from_reader_metadata_styles():
    assert photometric_interpretation({"PhotometricInterpretation": "MONOCHROME1"}) == "MONOCHROME1"
    assert photometric_interpretation({"0028|0004": "MONOCHROME1 "}) == "MONOCHROME1"  # ITK/SimpleITK style
    assert photometric_interpretation({"00280004": {"vr": "CS", "Value": ["MONOCHROME2"]}}) == "MONOCHROME2"
    assert photometric_interpretation({"spacing": 1.0}) is None
    both = {"PhotometricInterpretation": "MONOCHROME1", "rd_photometric_interpretation": "MONOCHROME2"}
    assert photometric_interpretation(both) == "MONOCHROME2"  # the array's own interpretation wins


def test_invert_by_metadata_and_only_once():
    rng = np.random.default_rng(0)
    raw = rng.integers(100, 4000, size=(1, 8, 8)).astype(np.float64)
    img = MetaTensor(torch.tensor(raw), meta={"PhotometricInterpretation": "MONOCHROME1"})
    out = InvertMonochrome1()(img)
    np.testing.assert_allclose(out.numpy(), raw.min() + raw.max() - raw, atol=1e-3)
    assert out.meta["rd_photometric_interpretation"] == "MONOCHROME2"
    assert out.meta["PhotometricInterpretation"] == "MONOCHROME1"  # the header value is not rewritten
    np.testing.assert_array_equal(InvertMonochrome1()(out).numpy(), out.numpy())  # already MONOCHROME2: unchanged
    # what monai_rd's DICOM reader returns after inverting: header MONOCHROME1, array MONOCHROME2 -> left alone
    read = MetaTensor(
        torch.tensor(raw),
        meta={"PhotometricInterpretation": "MONOCHROME1", "rd_photometric_interpretation": "MONOCHROME2"},
    )
    np.testing.assert_allclose(InvertMonochrome1()(read).numpy(), raw, atol=1e-3)
    mono2 = MetaTensor(torch.tensor(raw), meta={"PhotometricInterpretation": "MONOCHROME2"})
    np.testing.assert_allclose(InvertMonochrome1()(mono2).numpy(), raw, atol=1e-3)
    # flag and explicit value range (12-bit)
    forced = InvertMonochrome1(invert=True, value_range=(0, 4095))(torch.tensor(raw))
    np.testing.assert_allclose(forced.numpy(), 4095 - raw, atol=1e-3)
    kept = InvertMonochrome1d("image", invert=False)({"image": img})["image"]
    np.testing.assert_allclose(kept.numpy(), raw, atol=1e-3)


def test_invert_real_monochrome1_cr_file():
    ds = pydicom.dcmread(CR_MONOCHROME1)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = ds.pixel_array.astype(np.float64)
    img = MetaTensor(torch.tensor(raw[None]), meta={"PhotometricInterpretation": str(ds.PhotometricInterpretation)})
    out = InvertMonochrome1d("image", value_range=(0, 2**ds.BitsStored - 1))({"image": img})["image"]
    np.testing.assert_allclose(out.numpy()[0], 4095 - raw, atol=1e-3)
    assert int(np.argmax(out.numpy())) == int(np.argmin(raw))  # the darkest stored value is now the brightest


def structured_u8(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = 60 + 80 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 20, (h, w))
    base[h // 3 : h // 2, w // 4 : w // 2] += 90
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "h,w,tiles,clip",
    [(64, 64, (8, 8), 2.0), (64, 48, (4, 4), 3.0), (50, 70, (4, 6), 2.0), (64, 63, (8, 8), 1.0), (40, 40, (2, 2), 0.0)],
)
def test_clahe_matches_opencv(h, w, tiles, clip):
    u8 = structured_u8(h, w)
    reference = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles[1], tiles[0])).apply(u8).astype(np.float64)
    out = CLAHE(clip_limit=clip, tiles=tiles)(torch.tensor(u8[None] / 255.0)).numpy()[0] * 255.0
    # OpenCV rounds its LUT to integers, CLAHE keeps it in float: at most one grey level apart
    assert np.abs(out - reference).max() <= 1.0
    assert np.abs(np.rint(out) - reference).mean() < 0.2
    assert np.abs(out - u8).mean() > 5, "the reference changed the image, so this is not an identity check"


def test_clahe_16bit_matches_opencv():
    rng = np.random.default_rng(1)
    u16 = (structured_u8(32, 32).astype(np.float64) * 200 + rng.integers(0, 200, (32, 32))).astype(np.uint16)
    reference = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(u16).astype(np.float64)
    out = CLAHEd("image", clip_limit=2.0, tiles=(4, 4), nbins=65536)({"image": torch.tensor(u16[None] / 65535.0)})
    assert np.abs(out["image"].numpy()[0] * 65535.0 - reference).max() <= 1.0


def test_clahe_errors():
    with pytest.raises(ValueError, match="smaller than the"):
        CLAHE(tiles=(8, 8))(torch.rand(1, 4, 16))
    with pytest.raises(ValueError, match=r"2D image \[C, H, W\]"):
        CLAHE()(torch.rand(16, 16))


def test_xray_preset_inverts_scales_and_equalises():
    raw = structured_u8(32, 32, seed=3).astype(np.float64) * 16  # 12-bit-like values
    img = MetaTensor(torch.tensor(raw[None], dtype=torch.float32), meta={"PhotometricInterpretation": "MONOCHROME1"})
    out = np.asarray(load_preset("xray", "eval", image_size=32, clahe_tiles=[4, 4])({"image": img})["image"])
    inverted = raw.max() + raw.min() - raw
    scaled = (inverted - inverted.min()) / (inverted.max() - inverted.min())
    q = np.rint(scaled * 255).astype(np.uint8)
    reference = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(q) / 255.0
    assert out.shape == (3, 32, 32)
    assert np.abs(out[0] - reference).max() <= 1.0 / 255 + 1e-6
    np.testing.assert_array_equal(out[0], out[2])
    plain = np.asarray(load_preset("xray", "eval", image_size=32, clahe=[], invert=False)({"image": img})["image"])
    np.testing.assert_allclose(plain[1], (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)


@pytest.mark.parametrize("reader_inverts", [True, False])
def test_xray_preset_after_monai_rd_dicom_reader_inverts_once(reader_inverts):
    """LoadImaged with monai_rd's DicomReader, then the xray preset: the CR file comes out inverted exactly once,
    whether the reader inverts (and records MONOCHROME2) or leaves it to the preset."""
    data = pytest.importorskip("monai_rd.data")
    if not hasattr(data, "DicomReader"):
        pytest.skip("monai_rd.data.DicomReader is not on this branch (the readers branch provides it)")
    from monai.transforms import LoadImaged

    loader = LoadImaged(
        "image", reader=data.DicomReader(invert_monochrome1=reader_inverts), image_only=True, ensure_channel_first=True
    )
    image = loader({"image": CR_MONOCHROME1})["image"]
    out = np.asarray(load_preset("xray", "eval", image_size=16, clahe=[])({"image": image})["image"])
    raw = pydicom.dcmread(CR_MONOCHROME1).pixel_array.astype(np.float64)
    scaled = (raw - raw.min()) / (raw.max() - raw.min())
    assert out.shape == (3, 16, 16)
    np.testing.assert_allclose(np.sort(out[0].ravel()), np.sort(1.0 - scaled.ravel()), atol=1e-5)
    assert not np.allclose(np.sort(out[0].ravel()), np.sort(scaled.ravel()), atol=1e-2), "not inverted twice"

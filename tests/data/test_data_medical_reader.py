"""MedicalImageReader: one reader for DICOM, NIfTI and images, whose errors name the file and the reason."""

from __future__ import annotations

import os
import re

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage
from PIL import Image
from pydicom.data import get_testdata_file

from monai_rd.data import MedicalImageReader, UnsupportedFileError, source_kind

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ANATOMICAL = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "anatomical.nii")
CR = get_testdata_file(os.path.join("dicomdirtests", "77654033", "CR1", "6154"))


def load(path, **kw):
    return LoadImage(reader=MedicalImageReader(**kw), image_only=True, ensure_channel_first=True)(str(path))


def test_dispatch(tmp_path):
    Image.fromarray(np.zeros((3, 5), np.uint8)).save(tmp_path / "x.png")
    assert source_kind(tmp_path / "x.png") == "image" and tuple(load(tmp_path / "x.png").shape) == (1, 3, 5)
    assert source_kind(CR) == "dicom" and tuple(load(CR).shape) == (1, 16, 16)  # no suffix: the DICM marker
    assert source_kind(ANATOMICAL) == "nifti"
    assert tuple(load(ANATOMICAL, nifti={"slice_axis": "axial"}).shape) == (1, 25, 41, 33)
    assert tuple(load(CR, dicom={"voi": True}).shape) == (1, 16, 16) and float(load(CR, dicom={"voi": True}).max()) <= 1


def test_errors_reach_the_user_named():
    with pytest.raises(Exception, match=r"MR_truncated\.dcm' is truncated"):
        load(get_testdata_file("MR_truncated.dcm"))
    with pytest.raises(Exception, match=r"rtplan\.dcm' has no pixel data"):
        load(get_testdata_file("rtplan.dcm"))


def test_unsupported(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(UnsupportedFileError, match=r"a\.txt' is not a supported input"):
        source_kind(tmp_path / "a.txt")
    assert not MedicalImageReader().verify_suffix(str(tmp_path / "a.txt"))


@pytest.mark.parametrize("name, what", [("analyze.hdr", "an Analyze or NIfTI-1 .hdr/.img pair"),
                                        ("nifti1.hdr", "an Analyze or NIfTI-1 .hdr/.img pair"),
                                        ("test.mgz", "a FreeSurfer MGH volume")])  # fmt: skip
def test_formats_monai_would_read_in_another_orientation_are_refused_by_name(name, what):
    """nibabel's own files: MONAI's fallback readers would load the .hdr/.img pair as LAS and .mgz as SAR (and a
    lone .hdr with a bare FileNotFoundError); the input check that training and inference run first refuses them,
    naming the file and the conversion to make."""
    from monai_rd.data.checks import check_item

    path = os.path.join(os.path.dirname(nib.__file__), "tests", "data", name)
    expected = f"{name}' is {what}"
    with pytest.raises(UnsupportedFileError, match=re.escape(expected)):
        source_kind(path)
    reasons = check_item({"image": path, "label": 0}, num_classes=2)
    assert len(reasons) == 1 and expected in reasons[0] and "convert it to NIfTI" in reasons[0], reasons


def test_a_4d_series_is_refused_unless_a_volume_is_picked():
    """nibabel's example4d.nii.gz (2 volumes): never read as 2 channels or with one volume dropped silently."""
    from monai_rd.data.checks import check_item

    path = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "example4d.nii.gz")
    reasons = check_item({"image": path, "label": 0}, num_classes=2)
    assert len(reasons) == 1 and "a 4D series of 2 volumes" in reasons[0] and "--nifti_volume_index" in reasons[0]
    picked = MedicalImageReader(nifti={"volume_index": 1})
    assert check_item({"image": path, "label": 0}, num_classes=2, reader=picked) == []

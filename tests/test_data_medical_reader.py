"""MedicalImageReader: one reader for DICOM, NIfTI and images, whose errors name the file and the reason."""

from __future__ import annotations

import os

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

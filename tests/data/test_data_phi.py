"""No patient name/ID/birth date of a DICOM header reaches the meta dict, an error, or a datalist."""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from monai_rd.data import DicomReader, DicomReadError, SAFE_DICOM_TAGS, filter_meta, index_class_folders

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BIRTH = "19450317"


@pytest.fixture
def ct_with_phi(tmp_path):
    """CT_small as shipped (PatientName CompressedSamples^CT1, PatientID 1CT1) plus a birth date."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert str(ds.PatientName) == "CompressedSamples^CT1" and ds.PatientID == "1CT1"
    ds.PatientBirthDate = BIRTH
    path = tmp_path / "ct.dcm"
    ds.save_as(path)
    return str(path), [str(ds.PatientName), "CompressedSamples", ds.PatientID, BIRTH]


def _text(meta) -> str:
    return repr({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in meta.items()})


def test_returned_meta_has_no_phi(ct_with_phi):
    from monai.transforms import LoadImage

    path, phi = ct_with_phi
    img = LoadImage(reader=DicomReader(), image_only=True, ensure_channel_first=True)(path)
    text = _text(img.meta)
    for value in phi:
        assert value not in text
    assert img.meta["Modality"] == "CT" and "PatientName" not in img.meta and "PatientID" not in img.meta
    assert set(k for k in img.meta if k[0].isupper()) <= set(SAFE_DICOM_TAGS)


def test_errors_have_no_phi(ct_with_phi, tmp_path):
    path, phi = ct_with_phi
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:1000]  # truncated
    ds.save_as(tmp_path / "cut.dcm")
    with pytest.raises(DicomReadError) as err:
        DicomReader().get_data(DicomReader().read(str(tmp_path / "cut.dcm")))
    assert "truncated" in str(err.value)
    for value in phi:
        assert value not in str(err.value)
    with pytest.raises(DicomReadError) as err:
        DicomReader(voi=True).get_data(DicomReader(voi=True).read(path))
    for value in phi:
        assert value not in str(err.value)


def test_filter_meta_cleans_monai_pydicomreader_meta(ct_with_phi):
    from monai.data import PydicomReader

    path, phi = ct_with_phi
    reader = PydicomReader(prune_metadata=False)  # the default keeps geometry only; unpruned it copies all
    _, meta = reader.get_data(reader.read(path))
    assert any(v in _text(meta) for v in phi)  # MONAI's reader leaks them: the reason for the filter
    clean = filter_meta(meta)
    for value in phi:
        assert value not in _text(clean)
    assert "00080060" in clean and "affine" in clean  # Modality and geometry kept


def test_datalist_has_no_phi(ct_with_phi, tmp_path):
    path, phi = ct_with_phi
    root = tmp_path / "data"
    for c in ("a", "b"):
        for i in range(2):
            os.makedirs(root / c, exist_ok=True)
            ds = pydicom.dcmread(path)
            ds.save_as(root / c / f"img{i}.dcm")
    datalist = index_class_folders(root, datalist_file=tmp_path / "datalist.json")
    text = (tmp_path / "datalist.json").read_text()
    assert len(datalist["training"]) + len(datalist["validation"]) + len(datalist["test"]) == 4
    for value in phi:
        assert value not in text and value not in json.dumps(datalist)

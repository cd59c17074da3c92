"""Keeping protected health information (PHI) out of everything a reader returns.

DICOM headers carry the patient's name, ID, birth date, addresses, physicians, institution, dates... MONAI's
readers copy every header element into the image meta dict, from where it reaches logs, collated batches,
saved files and MLflow. The readers of :mod:`monai_rd.data` instead return only an **allow-list** of
technical tags (:data:`SAFE_DICOM_TAGS`) plus the geometry keys MONAI needs (:data:`MONAI_META_KEYS`);
:func:`filter_meta` applies the same allow-list to any meta dict (for example one produced by another reader).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["SAFE_DICOM_TAGS", "MONAI_META_KEYS", "PHI_DICOM_TAGS", "filter_meta", "dicom_safe_meta"]

#: DICOM keywords that describe the acquisition and the pixels, never the patient, the people or the dates.
SAFE_DICOM_TAGS: tuple[str, ...] = (
    "Modality",
    "SOPClassUID",
    "SeriesDescription",
    "BodyPartExamined",
    "ImageType",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PlanarConfiguration",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ImageOrientationPatient",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "ViewPosition",
    "KVP",
    "MagneticFieldStrength",
    "EchoTime",
    "RepetitionTime",
    "TransferSyntaxUID",
)

#: Keys MONAI's ``LoadImage``/``MetaTensor`` rely on (geometry and provenance), kept by :func:`filter_meta`.
MONAI_META_KEYS: tuple[str, ...] = (
    "affine",
    "original_affine",
    "spatial_shape",
    "original_channel_dim",
    "space",
    "filename_or_obj",
    "pixdim",
    "original_pixdim",
    "dim",
)

#: A few of the tags that identify a patient (for documentation and tests; the filter is an allow-list,
#: so anything not in :data:`SAFE_DICOM_TAGS` is dropped whether listed here or not).
PHI_DICOM_TAGS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientAddress",
    "OtherPatientIDs",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyDate",
)


def filter_meta(meta: Mapping[str, Any], allowed: Iterable[str] = SAFE_DICOM_TAGS, prefix: str = "") -> dict:
    """The entries of ``meta`` whose key is a MONAI geometry key, an allowed tag, or starts with ``prefix``.

    Args:
        meta: a meta dict as returned by an ``ImageReader.get_data`` (keys are DICOM keywords, hex tags such
            as ``"00100010"`` written by MONAI's PydicomReader, or MONAI keys).
        allowed: DICOM keywords to keep; hex tags are kept only if they name an allowed keyword.
        prefix: keys starting with it are kept as well (monai_rd's own derived keys use ``"rd_"``); ``""``
            keeps none.
    """
    from pydicom.datadict import keyword_for_tag

    allowed = set(allowed)
    keep = {}
    for key, value in meta.items():
        name = str(key)
        if len(name) == 8 and all(ch in "0123456789abcdefABCDEF" for ch in name):
            name = keyword_for_tag(int(name, 16)) or name
        if name in MONAI_META_KEYS or name in allowed or (prefix and name.startswith(prefix)):
            keep[key] = value
    return keep


def _plain(value: Any) -> Any:
    """A pydicom value as a plain Python/NumPy value (numbers, strings, lists of numbers)."""
    from pydicom.multival import MultiValue
    from pydicom.valuerep import DSdecimal, DSfloat, IS

    if isinstance(value, (MultiValue, list, tuple)):
        items = [_plain(v) for v in value]
        if items and all(isinstance(v, (int, float)) for v in items):
            return np.asarray(items, dtype=np.float64)
        return "\\".join(str(v) for v in items)
    if isinstance(value, (DSfloat, DSdecimal)):
        return float(value)
    if isinstance(value, IS):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def dicom_safe_meta(ds, allowed: Iterable[str] = SAFE_DICOM_TAGS) -> dict:
    """The allowed tags of a pydicom ``Dataset`` (and its file meta) as plain values, keyed by keyword."""
    meta = {}
    file_meta = getattr(ds, "file_meta", None)
    for keyword in allowed:
        element = ds.get(keyword)
        if element is None and file_meta is not None:
            element = file_meta.get(keyword)
        if element is None or element == "":
            continue
        meta[keyword] = _plain(element)
    return meta

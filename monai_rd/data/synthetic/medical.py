"""Small DICOM-series and NIfTI datasets in a clinic's export layout, built from real files (tests, demos).

The DICOM slices are copies of pydicom's real scanner file ``CT_small.dcm`` (shipped in the pydicom wheel) with
new UIDs and positions, downsampled and given a class-dependent signal; the NIfTI volumes are written with
nibabel, stored LAS (not canonical) like nibabel's own test files.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

__all__ = ["write_dicom_series", "write_nifti_volume", "make_dicom_series_dataset", "make_nifti_dataset"]


def write_dicom_series(
    folder, n_slices=4, size=32, lesion=False, seed=0, z0=0.0, dz=5.0, series_uid=None, prefix="IM"
) -> str:
    """A real CT_small.dcm copied into one series of ``n_slices`` files (shuffled names, z = z0 + k*dz),
    downsampled to ``size`` px, with a bright disc (+400 HU) in the middle slices when ``lesion``."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    uid = series_uid or generate_uid()
    order = rng.permutation(n_slices)
    for name_index, k in enumerate(order):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        step = ds.Rows // size
        arr = ds.pixel_array[::step, ::step][:size, :size].astype(np.int32)
        arr = arr + rng.integers(-20, 20, arr.shape)
        if lesion and 0 < k < n_slices - 1:
            yy, xx = np.mgrid[:size, :size]
            arr[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2] += 400
        ds.PixelData = arr.astype(np.int16).tobytes()
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [float(ds.PixelSpacing[0]) * step, float(ds.PixelSpacing[1]) * step]
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = int(k) + 1
        x, y, _ = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z0 + int(k) * dz]
        ds.save_as(os.path.join(folder, f"{prefix}{name_index:04d}.dcm"))
    return folder


def write_nifti_volume(path, shape=(20, 24, 6), lesion=False, seed=0, with_empty_slices=True) -> str:
    """A 3D NIfTI volume stored LAS (not canonical): a bright ellipsoid 'organ', a brighter blob when
    ``lesion``, and zero slices at both ends of the z axis when ``with_empty_slices``."""
    rng = np.random.default_rng(seed)
    x, y, z = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(np.float64)
    c = np.array(shape) / 2
    organ = ((x - c[0]) / (shape[0] / 2.5)) ** 2 + ((y - c[1]) / (shape[1] / 2.5)) ** 2 < 1
    data = organ * 100.0 + rng.normal(0, 5, shape) * organ
    if lesion:
        data[(x - c[0]) ** 2 + (y - c[1]) ** 2 < (shape[0] / 6) ** 2] += 150.0
    if with_empty_slices:
        data[..., 0] = 0
        data[..., -1] = 0
    affine = np.diag([-2.0, 2.0, 3.0, 1.0])  # LAS, like nibabel's own test files
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    return path


def make_dicom_series_dataset(
    folder: str | os.PathLike,
    n_patients: int = 4,
    n_slices: int = 4,
    size: int = 32,
    classes: tuple[str, ...] = ("normal", "lesion"),
) -> str:
    """``<folder>/<class>/patient<p>/series1/IM*.dcm``: one CT series per patient; the last class has lesions.

    Returns:
        ``folder`` (the dataset_dir of :func:`~monai_rd.data.index_class_folders`).
    """
    folder = os.fspath(folder)
    for label, class_name in enumerate(classes):
        for p in range(n_patients):
            write_dicom_series(
                os.path.join(folder, class_name, f"patient{p}", "series1"),
                n_slices=n_slices,
                size=size,
                lesion=label == len(classes) - 1,
                seed=100 * label + p,
            )
    return folder


def make_nifti_dataset(
    folder: str | os.PathLike,
    n_subjects: int = 4,
    shape: tuple[int, int, int] = (20, 24, 6),
    classes: tuple[str, ...] = ("normal", "lesion"),
) -> str:
    """``<folder>/<class>/subject<s>.nii.gz``: LAS volumes with empty end slices; the last class has lesions."""
    folder = os.fspath(folder)
    for label, class_name in enumerate(classes):
        os.makedirs(os.path.join(folder, class_name), exist_ok=True)
        for s in range(n_subjects):
            write_nifti_volume(
                os.path.join(folder, class_name, f"subject{s}.nii.gz"),
                shape=shape,
                lesion=label == len(classes) - 1,
                seed=100 * label + s,
            )
    return folder

"""Shared fixtures: fabricated datasets in the real on-disk layouts, and a bundle runner."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLES = os.path.join(REPO, "bundles")


def run_bundle(config_files, *, cwd=None, timeout=600, env=None, **overrides) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle run`` as a user would, overrides as ``--key value``; fail with its output."""
    if isinstance(config_files, str):
        config_arg = config_files
    else:
        config_arg = "[" + ",".join(f"'{c}'" for c in config_files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_arg]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    proc = subprocess.run(
        cmd, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        raise AssertionError(f"bundle run failed ({proc.returncode}):\n{' '.join(cmd)}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def busi_dir(tmp_path_factory) -> str:
    """A fabricated BUSI folder (``Dataset_BUSI_with_GT/<class>/<class> (N).png`` + masks), 32 px images."""
    from monai_rd.data import make_busi_like

    return make_busi_like(tmp_path_factory.mktemp("busi"), n_per_class=10, size=32, seed=0)


def write_dicom_series(folder, n_slices=4, size=32, lesion=False, seed=0, z0=0.0, dz=5.0, series_uid=None, prefix="IM"):
    """A real CT_small.dcm copied into one series of ``n_slices`` files (shuffled names, z = z0 + k*dz),
    downsampled to ``size`` px, with a bright disc (+400 HU) in the middle slices when ``lesion``."""
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

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


def write_nifti_volume(path, shape=(20, 24, 6), lesion=False, seed=0, with_empty_slices=True):
    """A 3D NIfTI volume stored LAS (not canonical): a bright ellipsoid 'organ', a brighter blob when
    ``lesion``, and zero slices at both ends of the z axis when ``with_empty_slices``."""
    import nibabel as nib
    import numpy as np

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


@pytest.fixture(scope="session")
def dicom_series_dir(tmp_path_factory) -> str:
    """``<root>/<class>/<patient>/<series>/IM*.dcm``: 2 classes x 4 patients, one 4-slice 32 px CT series each."""
    root = tmp_path_factory.mktemp("dicom_series")
    for label, class_name in enumerate(("normal", "lesion")):
        for p in range(4):
            write_dicom_series(str(root / class_name / f"patient{p}" / "series1"), lesion=bool(label), seed=10 * label + p)
    return str(root)


@pytest.fixture(scope="session")
def nifti_dir(tmp_path_factory) -> str:
    """``<root>/<class>/<subject>.nii.gz``: 2 classes x 4 LAS volumes of 20 x 24 x 6 with empty end slices."""
    root = tmp_path_factory.mktemp("nifti")
    for label, class_name in enumerate(("normal", "lesion")):
        os.makedirs(root / class_name)
        for s in range(4):
            write_nifti_volume(str(root / class_name / f"subject{s}.nii.gz"), lesion=bool(label), seed=10 * label + s)
    return str(root)

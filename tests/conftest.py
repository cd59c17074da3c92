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


@pytest.fixture(scope="session")
def dicom_series_dir(tmp_path_factory) -> str:
    """``<root>/<class>/<patient>/<series>/IM*.dcm``: 2 classes x 4 patients, one 4-slice 32 px CT series each."""
    from monai_rd.data import make_dicom_series_dataset

    return make_dicom_series_dataset(tmp_path_factory.mktemp("dicom_series"), n_patients=4, n_slices=4, size=32)


@pytest.fixture(scope="session")
def nifti_dir(tmp_path_factory) -> str:
    """``<root>/<class>/<subject>.nii.gz``: 2 classes x 4 LAS volumes of 20 x 24 x 6 with empty end slices."""
    from monai_rd.data import make_nifti_dataset

    return make_nifti_dataset(tmp_path_factory.mktemp("nifti"), n_subjects=4, shape=(20, 24, 6))

"""A MosMedData-like folder: ``studies/CT-0 .. CT-4/study_NNNN.nii.gz`` chest CT volumes in Hounsfield units."""

from __future__ import annotations

import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from monai_rd.data.indexers.mosmed import MOSMED_GRADES

__all__ = ["write_chest_ct_volume", "make_mosmed_like"]

#: share of the lungs covered by ground-glass opacity per grade (CT-1: <25%, CT-2: 25-50%, ...)
_INVOLVEMENT = {"CT-0": 0.0, "CT-1": 0.15, "CT-2": 0.38, "CT-3": 0.62, "CT-4": 0.85}


def write_chest_ct_volume(
    path: str | os.PathLike, grade: str = "CT-0", shape: Sequence[int] = (40, 40, 16), seed: int = 0
) -> str:
    """One int16 NIfTI chest CT in HU: air (-1000) around a body (40 HU), two lungs (-850 HU), and ground-glass
    opacity (-300 HU) over the lung share of ``grade`` (from the posterior side, as COVID-19 lesions often are).

    The affine is LPS-like (``diag(-0.8, -0.8, 8)`` mm, MosMedData's typical 8 mm slices), so a pipeline that
    forgets to reorient or resample sees a different volume.
    """
    if grade not in _INVOLVEMENT:
        raise ValueError(f"grade must be one of {list(_INVOLVEMENT)}, got {grade!r}.")
    rng = np.random.default_rng(seed)
    nx, ny, nz = (int(s) for s in shape)
    x, y, z = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(-1, 1, ny), np.linspace(-1, 1, nz), indexing="ij")
    body = (x / 0.9) ** 2 + (y / 0.7) ** 2 < 1
    lungs = np.zeros(shape, bool)
    for cx in (-0.42, 0.42):
        lungs |= ((x - cx) / 0.32) ** 2 + (y / 0.5) ** 2 + (z / 0.95) ** 2 < 1
    hu = np.full(shape, -1000.0)
    hu[body] = 40.0
    hu[lungs] = -850.0
    share = _INVOLVEMENT[grade]
    if share > 0:
        # the posterior share of each lung (largest y first), jittered so that no two studies are alike
        cut = np.quantile(y[lungs], 1.0 - share) + rng.uniform(-0.05, 0.05)
        hu[lungs & (y >= cut)] = -300.0
    hu += rng.normal(0, 15, shape)
    affine = np.diag([-0.8, -0.8, 8.0, 1.0])
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    nib.save(nib.Nifti1Image(np.round(hu).astype(np.int16), affine), os.fspath(path))
    return os.fspath(path)


def make_mosmed_like(
    folder: str | os.PathLike,
    n_per_grade: int = 4,
    shape: Sequence[int] = (40, 40, 16),
    grades: Sequence[str] = MOSMED_GRADES,
    seed: int = 0,
) -> str:
    """``<folder>/studies/CT-<k>/study_NNNN.nii.gz`` (numbered across grades, as in the release); returns ``folder``."""
    folder = os.fspath(folder)
    number = 1
    for g, grade in enumerate(grades):
        for i in range(n_per_grade):
            path = os.path.join(folder, "studies", grade, f"study_{number:04d}.nii.gz")
            write_chest_ct_volume(path, grade, shape, seed=seed * 1000 + 100 * g + i)
            number += 1
    return folder

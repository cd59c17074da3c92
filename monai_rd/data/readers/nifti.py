"""A NIfTI reader for MONAI: canonical (RAS+) orientation first, optionally laid out as display slices.

Array convention (what :meth:`NiftiReader.get_data` returns, before ``EnsureChannelFirst``):

- ``slice_axis=None``: the volume as ``nibabel.as_closest_canonical`` gives it, ``[X, Y, Z]`` with X towards
  the patient's right, Y anterior, Z superior (``[X, Y, Z, T]`` for a 4D series, T being the channel axis).
- ``slice_axis="axial" | "coronal" | "sagittal"``: ``[S, H, W]`` (``[S, H, W, T]``): axis 0 runs through the
  slices along that anatomical axis (inferior->superior, posterior->anterior, right... see below), and every
  ``[H, W]`` slice is in the radiological display orientation that a DICOM slice of that plane has:

  ========  =======================  ==================  ===================
  plane     S (axis 0)               H (rows, top->down)  W (columns, left->right)
  ========  =======================  ==================  ===================
  axial     inferior -> superior     anterior -> posterior   patient right -> left
  coronal   posterior -> anterior    superior -> inferior    patient right -> left
  sagittal  right -> left... (RAS x)  superior -> inferior    anterior -> posterior
  ========  =======================  ==================  ===================

  (sagittal S follows the canonical X index, i.e. towards the patient's right.) So an axial slice looks like
  the CT/MR image a radiologist reads, which is what a 2D student and a natural-image teacher should see.

The ``affine`` always maps the returned array indices to RAS world coordinates (the canonical affine composed
with the axis permutation/flips), so geometry stays exact. ``volume_index`` picks one volume of a 4D series.
"""

from __future__ import annotations

import os

import numpy as np
from monai_rd.data.errors import BadInputError
from monai_rd.data.readers.base import FileImageReader

__all__ = ["NiftiReader", "NiftiReadError", "SLICE_PLANES", "read_nifti"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")

#: plane -> (canonical axes giving S, H, W). H and W are always flipped (see the module docstring).
SLICE_PLANES: dict[str, tuple[int, int, int]] = {
    "sagittal": (0, 2, 1),
    "coronal": (1, 2, 0),
    "axial": (2, 1, 0),
}


class NiftiReadError(BadInputError):
    """A NIfTI file that cannot be read as asked; the message names the file and the reason."""


def _plane(slice_axis: str | int | None) -> str | None:
    if slice_axis is None:
        return None
    if isinstance(slice_axis, (int, np.integer)):
        names = {0: "sagittal", 1: "coronal", 2: "axial"}
        if int(slice_axis) not in names:
            raise ValueError(f"slice_axis must be 0, 1, 2 (canonical RAS axes) or a plane name, got {slice_axis}.")
        return names[int(slice_axis)]
    if slice_axis not in SLICE_PLANES:
        raise ValueError(f"slice_axis must be one of {sorted(SLICE_PLANES)} (or 0, 1, 2, or None), got {slice_axis!r}.")
    return slice_axis


def read_nifti(
    path: str | os.PathLike,
    slice_axis: str | int | None = None,
    volume_index: int | None = None,
    canonical: bool = True,
    dtype=np.float32,
) -> tuple[np.ndarray, dict]:
    """Read a 3D/4D NIfTI file as ``(array, meta)`` in the layout of :class:`NiftiReader`.

    Raises:
        NiftiReadError: not NIfTI/unreadable, not 3D or 4D, ``volume_index`` out of range (file named).
    """
    import nibabel as nib

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise NiftiReadError(f"{path!r}: no such file.")
    try:
        img = nib.load(path)
    except Exception as e:
        raise NiftiReadError(f"{path!r} cannot be read as NIfTI ({type(e).__name__}: {e}).") from e
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NiftiReadError(f"{path!r} is a {type(img).__name__}, not a NIfTI image.")
    if len(img.shape) not in (3, 4):
        raise NiftiReadError(f"{path!r} has shape {img.shape}: a 3D volume or a 4D series was expected.")
    try:  # reorienting may already read the (possibly truncated) voxel data
        if canonical:
            img = nib.as_closest_canonical(img)
        data = np.asarray(img.get_fdata(dtype=np.float64))
    except Exception as e:
        raise NiftiReadError(
            f"{path!r}: the voxel data cannot be read ({type(e).__name__}: {e}); truncated file?"
        ) from e
    affine = np.asarray(img.affine, dtype=np.float64)
    if data.ndim == 4 and volume_index is not None:
        if not -data.shape[3] <= volume_index < data.shape[3]:
            raise NiftiReadError(f"{path!r} has {data.shape[3]} volumes; volume_index={volume_index} is out of range.")
        data = data[..., volume_index]
    plane = _plane(slice_axis)
    if plane is not None:
        axes = SLICE_PLANES[plane]
        data = np.transpose(data, axes + tuple(range(3, data.ndim)))
        data = data[:, ::-1, ::-1]
        # new index (s, h, w) -> canonical index: axes[0] = s, axes[1] = n1 - 1 - h, axes[2] = n2 - 1 - w
        shape = data.shape
        m = np.zeros((4, 4))
        m[axes[0], 0] = 1.0
        m[axes[1], 1] = -1.0
        m[axes[1], 3] = shape[1] - 1
        m[axes[2], 2] = -1.0
        m[axes[2], 3] = shape[2] - 1
        m[3, 3] = 1.0
        affine = affine @ m
    data = np.ascontiguousarray(data, dtype=dtype)
    meta = {
        "affine": affine,
        "original_affine": np.asarray(nib.load(path).affine, dtype=np.float64),
        "spatial_shape": np.asarray(data.shape[:3]),
        "original_channel_dim": -1 if data.ndim == 4 else float("nan"),
        "space": "RAS",
        "rd_slice_plane": plane or "none",
        "rd_axcodes": "".join(nib.aff2axcodes(affine)),
    }
    return data, meta


class NiftiReader(FileImageReader):
    """MONAI ``ImageReader`` for NIfTI volumes via nibabel, canonical orientation first.

    Args:
        slice_axis: ``None`` (canonical ``[X, Y, Z]``), or ``"axial"``/``"coronal"``/``"sagittal"`` (or the
            canonical axis 2/1/0) for the ``[S, H, W]`` display-slice layout of the module docstring.
        volume_index: for 4D series, keep only this volume (else the 4th axis becomes the channel axis).
        canonical: reorient to the closest RAS+ orientation first (``nibabel.as_closest_canonical``).
        dtype: output dtype.
    """

    suffixes = NIFTI_SUFFIXES
    error = NiftiReadError

    def __init__(
        self,
        slice_axis: str | int | None = None,
        volume_index: int | None = None,
        canonical: bool = True,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        _plane(slice_axis)
        self.slice_axis = slice_axis
        self.volume_index = volume_index
        self.canonical = canonical
        self.dtype = dtype

    def read_file(self, name: str) -> tuple[np.ndarray, dict]:
        return read_nifti(name, self.slice_axis, self.volume_index, self.canonical, self.dtype)

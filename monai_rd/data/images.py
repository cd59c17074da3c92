"""Listing the image files of a folder for inference."""

from __future__ import annotations

import os
import re

from monai_rd.data.readers.natural import NATURAL_IMAGE_SUFFIXES as IMAGE_EXTENSIONS  # what the reader decodes

__all__ = ["IMAGE_EXTENSIONS", "list_images", "list_volumes"]


def list_images(
    folder: str | os.PathLike, extensions: tuple[str, ...] = IMAGE_EXTENSIONS, exclude: str | re.Pattern | None = None
) -> list[dict]:
    """``[{"image": path}]`` for every image under ``folder`` (recursively, sorted).

    ``exclude``: a regular expression; files whose name it matches (``re.search``) are left out, e.g. a
    dataset's masks (:data:`monai_rd.data.indexers.busi.BUSI_MASK_PATTERN`).

    Raises:
        FileNotFoundError: ``folder`` does not exist or holds no image with one of ``extensions``.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Input folder {folder!r} does not exist.")
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(extensions) and not name.startswith(".")
        and not (exclude is not None and re.search(exclude, name))
    )  # fmt: skip
    if not files:
        raise FileNotFoundError(f"No image ({', '.join(extensions)}) under {folder!r}.")
    return [{"image": os.path.abspath(p)} for p in files]


def list_volumes(folder: str | os.PathLike) -> list[dict]:
    """``[{"image": path}]`` for every volume under ``folder`` (recursively, sorted): each NIfTI file
    (``.nii``/``.nii.gz``) and each folder that directly holds DICOM files (one series, read whole by
    :class:`~monai_rd.data.DicomReader`). Other files are refused by name, so nothing is silently skipped.

    Raises:
        FileNotFoundError: ``folder`` does not exist or holds no volume.
        ValueError: a file that is neither NIfTI nor DICOM, or a folder mixing DICOM files and NIfTI volumes.
    """
    from monai_rd.data.readers.dicom import DICOM_SUFFIXES, is_dicom_file
    from monai_rd.data.readers.nifti import NIFTI_SUFFIXES

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Input folder {folder!r} does not exist.")
    volumes = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        names = sorted(n for n in names if not n.startswith("."))
        dicom = [n for n in names if n.lower().endswith(DICOM_SUFFIXES) or is_dicom_file(os.path.join(root, n))]
        nifti = [n for n in names if n.lower().endswith(NIFTI_SUFFIXES)]
        other = sorted(set(names) - set(dicom) - set(nifti))
        if other:
            raise ValueError(f"{os.path.join(root, other[0])!r} is neither a NIfTI volume nor a DICOM file.")
        if dicom and nifti:
            raise ValueError(f"{root!r} mixes DICOM files and NIfTI volumes: keep each DICOM series in its own folder.")
        volumes += [os.path.join(root, n) for n in nifti] + ([root] if dicom else [])
    if not volumes:
        raise FileNotFoundError(f"No volume (NIfTI file or DICOM series folder) under {folder!r}.")
    return [{"image": os.path.abspath(p)} for p in sorted(volumes)]

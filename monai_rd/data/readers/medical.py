"""One MONAI reader for everything a clinic exports: DICOM files/series folders, NIfTI volumes, PNG/JPEG/BMP/TIFF.

``LoadImaged(keys="image", reader=MedicalImageReader(...))`` picks the reader from the path itself (a folder or
a file with the ``DICM`` marker or a ``.dcm``/``.dicom``/``.ima`` suffix -> :class:`DicomReader`; ``.nii``/
``.nii.gz`` -> :class:`NiftiReader`; ``.png``/``.jpg``/``.jpeg``/``.bmp``/``.tif``/``.tiff`` ->
:class:`NaturalImageReader`), so a failure raises that reader's own error (file and reason named) instead of
MONAI's "cannot find a suitable reader" with one traceback per candidate reader.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from monai.data.image_reader import ImageReader
from monai.utils import ensure_tuple

from monai_rd.data.errors import BadInputError
from monai_rd.data.readers.dicom import DICOM_SUFFIXES, DicomReader, is_dicom_file
from monai_rd.data.readers.natural import NATURAL_IMAGE_SUFFIXES, NaturalImageReader
from monai_rd.data.readers.nifti import NIFTI_SUFFIXES, NiftiReader

__all__ = ["MedicalImageReader", "UnsupportedFileError", "source_kind"]

#: medical formats this project does not read, and what to do: MONAI's fallback readers would load them in another
#: orientation (an Analyze/NIfTI pair as LAS, FreeSurfer MGH as SAR) or fail with a bare FileNotFoundError
_NOT_READ = {
    (".hdr", ".img"): "an Analyze or NIfTI-1 .hdr/.img pair",
    (".mgz", ".mgh"): "a FreeSurfer MGH volume",
    (".nrrd", ".nhdr"): "an NRRD volume",
    (".mha", ".mhd"): "a MetaImage volume",
}


class UnsupportedFileError(BadInputError):
    """A path that is neither DICOM, NIfTI nor a PNG/JPEG/BMP/TIFF image."""


def source_kind(path: str | os.PathLike) -> str:
    """``"dicom"``, ``"nifti"`` or ``"image"`` for a path; raises :class:`UnsupportedFileError` otherwise."""
    path = os.fspath(path)
    lower = path.lower()
    if os.path.isdir(path):
        return "dicom"
    if lower.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if lower.endswith(NATURAL_IMAGE_SUFFIXES):
        return "image"
    if lower.endswith(DICOM_SUFFIXES) or is_dicom_file(path):
        return "dicom"
    if not os.path.exists(path):
        raise UnsupportedFileError(f"{path!r}: no such file or folder.")
    for suffixes, what in _NOT_READ.items():
        if lower.endswith(suffixes):
            raise UnsupportedFileError(
                f"{path!r} is {what}, which this project does not read (its orientation would not be checked): "
                "convert it to NIfTI first, e.g. python -c \"import nibabel as nib; nib.save(nib.load('IN'), 'OUT.nii.gz')\" "
                "(SimpleITK for NRRD/MetaImage), and check the orientation of the result."
            )
    raise UnsupportedFileError(
        f"{path!r} is not a supported input: expected a DICOM file (with the DICM marker), a folder of DICOM files, "
        f"a NIfTI volume ({', '.join(NIFTI_SUFFIXES)}) or an image ({', '.join(NATURAL_IMAGE_SUFFIXES)})."
    )


def _build(reader, cls):
    if reader is None:
        return cls()
    if isinstance(reader, Mapping):
        return cls(**reader)
    return reader


class MedicalImageReader(ImageReader):
    """Dispatch each path to the DICOM, NIfTI or natural-image reader (see the module docstring).

    Args:
        dicom: a :class:`DicomReader` or its keyword arguments.
        nifti: a :class:`NiftiReader` or its keyword arguments.
        image: a :class:`NaturalImageReader` or its keyword arguments.
    """

    def __init__(self, dicom=None, nifti=None, image=None) -> None:
        super().__init__()
        self.readers = {
            "dicom": _build(dicom, DicomReader),
            "nifti": _build(nifti, NiftiReader),
            "image": _build(image, NaturalImageReader),
        }

    def verify_suffix(self, filename) -> bool:
        try:
            kinds = {source_kind(f) for f in ensure_tuple(filename)}
        except UnsupportedFileError:
            return False
        return len(kinds) == 1

    def read(self, data, **kwargs):
        names = ensure_tuple(data)
        kinds = {source_kind(f) for f in names}
        if len(kinds) != 1:
            raise UnsupportedFileError(f"Cannot stack inputs of different kinds {sorted(kinds)}: {list(names)}.")
        kind = kinds.pop()
        return kind, self.readers[kind].read(data, **kwargs)

    def get_data(self, img):
        kind, obj = img
        return self.readers[kind].get_data(obj)

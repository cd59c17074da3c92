"""MONAI ``ImageReader``s for what a clinic exports: DICOM, NIfTI and natural images, with a PHI allow-list."""

from monai_rd.data.readers.base import FileImageReader
from monai_rd.data.readers.dicom import (
    DicomReadError,
    DicomReader,
    DicomSeriesInfo,
    find_dicom_series,
    is_dicom_file,
    read_dicom,
)
from monai_rd.data.readers.medical import MedicalImageReader, UnsupportedFileError, source_kind
from monai_rd.data.readers.natural import ImageReadError, NaturalImageReader, read_natural_image
from monai_rd.data.readers.nifti import NiftiReader, NiftiReadError, read_nifti
from monai_rd.data.readers.phi import SAFE_DICOM_TAGS, dicom_safe_meta, filter_meta

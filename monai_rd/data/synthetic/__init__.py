"""Synthetic datasets written in the exact on-disk layouts of the real ones (demos and tests)."""

from monai_rd.data.synthetic.medical import (
    make_dicom_series_dataset,
    make_nifti_dataset,
    write_dicom_series,
    write_nifti_volume,
)
from monai_rd.data.synthetic.mosmed import make_mosmed_like, write_chest_ct_volume
from monai_rd.data.synthetic.natural import *  # noqa: F401,F403
from monai_rd.data.synthetic.natural import __all__ as _natural_all
from monai_rd.data.synthetic.source import SOURCE_CLASSES, make_source_images, source_shape_mask
from monai_rd.data.synthetic.target import TARGET_CLASSES, make_target_images

__all__ = [
    *_natural_all,
    "make_dicom_series_dataset",
    "make_nifti_dataset",
    "write_dicom_series",
    "write_nifti_volume",
    "make_mosmed_like",
    "write_chest_ct_volume",
    "SOURCE_CLASSES",
    "make_source_images",
    "source_shape_mask",
    "TARGET_CLASSES",
    "make_target_images",
]

"""Data: dataset indexers that write MONAI datalists, and split helpers."""

from .busi import BUSI_CLASSES, index_busi
from .datalist import datalist_hash, stratified_split, write_datalist
from .images import IMAGE_EXTENSIONS, list_images
from .synthetic import make_busi_like
from .dicom_reader import DicomReadError, DicomReader, DicomSeriesInfo, find_dicom_series, is_dicom_file, read_dicom
from .folder_index import expand_source, grouped_stratified_split, index_class_folders, index_csv
from .image_reader import ImageReadError, NaturalImageReader, read_natural_image
from .medical_reader import MedicalImageReader, UnsupportedFileError, source_kind
from .nifti_reader import NiftiReader, NiftiReadError, read_nifti
from .phi import SAFE_DICOM_TAGS, dicom_safe_meta, filter_meta
from .slices import SLICE_MODES, select_slices
from .synthetic_medical import make_dicom_series_dataset, make_nifti_dataset, write_dicom_series, write_nifti_volume

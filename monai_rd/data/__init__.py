"""Data: dataset indexers that write MONAI datalists, split helpers and synthetic datasets in real layouts."""

from .btc import BTC_CLASSES, index_btc
from .busi import BUSI_CLASSES, index_busi
from .chestxray14 import CHESTXRAY14_FINDINGS, index_chestxray14
from .covid_ct import COVID_CT_CLASSES, index_covid_ct
from .datalist import datalist_hash, finalize_datalist, stratified_split, write_datalist
from .duplicates import difference_hash, group_near_duplicates, hamming_distances
from .folders import list_class_folders
from .images import IMAGE_EXTENSIONS, list_images
from .isic import HAM10000_DX, ISIC2018_CLASSES, index_ham10000, index_isic2018
from .registry import INDEXERS, index_dataset
from .synthetic import (
    make_btc_like,
    make_busi_like,
    make_chestxray14_like,
    make_covid_ct_like,
    make_ham10000_like,
    make_isic2018_like,
)
from .dicom_reader import DicomReadError, DicomReader, DicomSeriesInfo, find_dicom_series, is_dicom_file, read_dicom
from .folder_index import expand_source, grouped_stratified_split, index_class_folders, index_csv
from .image_reader import ImageReadError, NaturalImageReader, read_natural_image
from .medical_reader import MedicalImageReader, UnsupportedFileError, source_kind
from .nifti_reader import NiftiReader, NiftiReadError, read_nifti
from .phi import SAFE_DICOM_TAGS, dicom_safe_meta, filter_meta
from .slices import SLICE_MODES, select_slices
from .synthetic_medical import make_dicom_series_dataset, make_nifti_dataset, write_dicom_series, write_nifti_volume
from .synthetic import make_busi_like
from .validate import UnreadableInputsError, check_readable, expand_inputs
from .cached_dataset import CachedFeatureDataset, SeededViewDataset, cached_feature_shape, feature_cache_dataset
from .feature_cache import FeatureCache, FeatureCacheError, transform_fingerprint, view_seed
from .validation import BadInputError, check_item, validate_datalist

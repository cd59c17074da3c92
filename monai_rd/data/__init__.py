"""Data: dataset indexers that write MONAI datalists, and split helpers."""

from .busi import BUSI_CLASSES, index_busi
from .datalist import datalist_hash, stratified_split, write_datalist
from .images import IMAGE_EXTENSIONS, list_images
from .synthetic import make_busi_like
from .cached_dataset import CachedFeatureDataset, SeededViewDataset, cached_feature_shape, feature_cache_dataset
from .feature_cache import FeatureCache, FeatureCacheError, transform_fingerprint, view_seed

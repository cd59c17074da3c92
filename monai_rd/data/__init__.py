"""Data: dataset indexers that write MONAI datalists, split helpers and synthetic datasets in real layouts."""

from monai_rd.data.cached_dataset import (
    CachedFeatureDataset,
    SeededViewDataset,
    cached_feature_shape,
    feature_cache_dataset,
    preprocessing_dataset,
)
from monai_rd.data.loading import available_cpus, capped_workers, default_num_workers, make_dataloader
from monai_rd.data.checks import (
    ON_BAD_INPUT,
    BadInputError,
    SplitTooSmallError,
    UnreadableInputsError,
    check_item,
    check_readable,
    expand_inputs,
    validate_datalist,
)
from monai_rd.data.datalist import (
    SPLIT_PROTOCOLS,
    assign_splits,
    check_disjoint_splits,
    check_split_options,
    datalist_hash,
    finalize_datalist,
    kfold_split,
    stratified_split,
    write_datalist,
    read_datalist,
    SplitNotFoundError,
)
from monai_rd.data.duplicates import difference_hash, group_near_duplicates, hamming_distances
from monai_rd.data.feature_cache import FeatureCache, FeatureCacheError, transform_fingerprint, view_seed
from monai_rd.data.images import IMAGE_EXTENSIONS, list_images, list_volumes
from monai_rd.data.indexers import *  # noqa: F401,F403
from monai_rd.data.indices import INDEX_KEY, with_indices
from monai_rd.data.readers import *  # noqa: F401,F403
from monai_rd.data.slices import SLICE_MODES, select_slices
from monai_rd.data.synthetic import *  # noqa: F401,F403

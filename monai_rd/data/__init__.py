"""Data: dataset indexers that write MONAI datalists, split helpers and synthetic datasets in real layouts.

The package's names load on first use (PEP 562): ``import monai_rd.data.datalist`` alone stays free of torch and
MONAI, so ``monai-rd bundle list`` and the bundles' datalist reading answer in well under a second.
"""


def _load():
    """Import every sub-module and bind its public names here, as an eager ``__init__`` would."""
    import importlib

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
    from monai_rd.data.indices import INDEX_KEY, with_indices
    from monai_rd.data.slices import SLICE_MODES, select_slices

    globals().update({name: value for name, value in locals().items() if not name.startswith("_")})
    for module in ("indexers", "readers", "synthetic"):  # their whole public API, as `from ... import *` would bind
        module = importlib.import_module(f"monai_rd.data.{module}")
        public = getattr(module, "__all__", [name for name in vars(module) if not name.startswith("_")])
        globals().update({name: getattr(module, name) for name in public})


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    _load()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'monai_rd.data' has no attribute {name!r}") from None


def __dir__():
    _load()
    return sorted(globals())

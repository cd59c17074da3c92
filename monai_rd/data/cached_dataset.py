"""Datasets that serve seeded augmented views, and the cached teacher features of exactly those views.

The deterministic head of a split's transform (reading, channel handling, intensity scaling, resizing: everything
before the first random transform) is computed once and kept, in memory (MONAI ``CacheDataset``) or on disk
(MONAI ``PersistentDataset``); every epoch only applies the random rest. See :func:`preprocessing_dataset`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence

import torch
from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.transforms import Compose, Randomizable, RandomizableTrait, Transform

from monai_rd.data.feature_cache import (
    FeatureCache,
    FeatureCacheError,
    apply_view,
    item_id,
    transform_fingerprint,
    view_seed,
)
from monai_rd.data.loading import available_cpus
from monai_rd.utils import sha256_json
from monai_rd.utils.enums import RDKeys

__all__ = [
    "PREPROCESSING_CACHE_MODES",
    "SeededViewDataset",
    "CachedFeatureDataset",
    "feature_cache_dataset",
    "cached_feature_shape",
    "preprocessing_dataset",
    "deterministic_prefix_length",
]

PREPROCESSING_CACHE_MODES = ("auto", "memory", "none")  # or a folder path (on disk)
AUTO_CACHE_BYTES = 4 << 30  # "auto" keeps at most this much (or a quarter of the available memory, if less)
logger = logging.getLogger(__name__)


def deterministic_prefix_length(transform: Callable | None) -> int:
    """How many leading transforms of a ``Compose`` are deterministic (MONAI ``CacheDataset``'s own rule: up to the
    first ``RandomizableTrait`` or non-``Transform`` callable); 0 for anything that is not a ``Compose``."""
    if not isinstance(transform, Compose):
        return 0
    first = transform.get_index_of_first(lambda t: isinstance(t, RandomizableTrait) or not isinstance(t, Transform))
    return len(transform.transforms) if first is None else int(first)


def _prefix(transform: Compose, length: int) -> Compose:
    """The first ``length`` transforms of ``transform`` as a Compose with the same settings."""
    return Compose(transform.transforms[:length], map_items=transform.map_items, unpack_items=transform.unpack_items,
                   log_stats=transform.log_stats, lazy=transform.lazy, overrides=transform.overrides)  # fmt: skip


def _fingerprint_bytes(transform: Callable) -> bytes:
    return sha256_json(transform_fingerprint(transform)).encode()


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _auto_cache_rate(data: Sequence, prefix: Callable) -> float:
    """The fraction of ``data`` whose preprocessed items fit the "auto" budget (estimated on the first item)."""
    if not data:
        return 1.0
    sample = prefix(dict(data[0]) if isinstance(data[0], Mapping) else data[0])
    values = sample.values() if isinstance(sample, Mapping) else [sample]
    per_item = sum(v.element_size() * v.nelement() for v in values if isinstance(v, torch.Tensor)) or 1
    available = _available_memory()
    budget = min(AUTO_CACHE_BYTES, available // 4) if available else AUTO_CACHE_BYTES
    rate = min(1.0, budget / (per_item * len(data)))
    if rate < 1.0:
        logger.warning("Preprocessing cache 'auto': %d of %d items fit in %.1f GiB of memory; pass a folder as "
                       "preprocessing_cache to cache all of them on disk.", int(rate * len(data)), len(data),
                       budget / 2**30)  # fmt: skip
    return rate


def preprocessing_dataset(data: Sequence, transform: Callable | None, preprocessing_cache: str | None = "auto"):
    """A MONAI dataset over ``data`` that applies ``transform`` with its deterministic head computed once.

    Args:
        data: datalist items.
        transform: the split's transform (only a ``Compose`` has a deterministic head to cache).
        preprocessing_cache: ``"auto"`` (memory, as many items as fit in min(4 GiB, a quarter of the available
            memory); a warning says how many), ``"memory"`` (all items in memory), a folder path (on disk,
            keyed by item and by the transform's fingerprint, reused across runs), ``"none"``/``None``.

    Returns:
        ``Dataset``, ``CacheDataset`` or ``PersistentDataset``; item ``i`` equals ``transform(data[i])`` for the
        same random state of ``transform`` (the random rest is applied per access, as without a cache).
    """
    mode = "none" if preprocessing_cache is None else str(preprocessing_cache)
    if mode == "none" or deterministic_prefix_length(transform) == 0:
        return Dataset(data=data, transform=transform)
    if mode in ("auto", "memory"):
        rate = _auto_cache_rate(data, _prefix(transform, deterministic_prefix_length(transform))) if mode == "auto" \
            else 1.0  # fmt: skip
        return CacheDataset(data=data, transform=transform, cache_rate=rate, num_workers=available_cpus(),
                            progress=False)  # fmt: skip
    os.makedirs(mode, exist_ok=True)
    return PersistentDataset(data=data, transform=transform, cache_dir=mode,
                             hash_transform=functools.partial(_fingerprint_bytes))  # fmt: skip


TEACHER_FEATURES = RDKeys.TEACHER_FEATURES  # the batch key RDTrainer / RDEvaluator read
TEACHER_VIEW = "teacher_view"
SPLITS = ("training", "validation")


class SeededViewDataset(Dataset, Randomizable):
    """A MONAI ``Dataset`` whose item ``i`` is one of ``views`` reproducible augmented views of ``data[i]``.

    Each access draws ``k`` in ``[0, views)`` from this dataset's random state (seeded like any MONAI
    Randomizable by ``set_determinism`` / MONAI's DataLoader worker seeding) and returns
    ``transform(data[i])`` with the random transforms seeded by :func:`view_seed` ``(item, k)``, plus
    ``k`` under ``view_key``. The same ``(item, k)`` always gives the same image, so features computed
    once for view ``k`` belong to exactly this image.

    Args:
        data: datalist items.
        transform: the split's transform (a MONAI Compose; re-seeded in place per item, one copy per worker).
        views: ``K``.
        image_key: key of the image path in the items (identifies the item for seeding).
        view_key: output key of the view index.
        preprocessing_cache: where the transform's deterministic head is kept (see :func:`preprocessing_dataset`);
            the random rest is seeded exactly as the whole transform would be, so the views are unchanged.
    """

    def __init__(
        self,
        data: Sequence,
        transform: Callable | None,
        views: int = 1,
        image_key: str = "image",
        view_key: str = TEACHER_VIEW,
        preprocessing_cache: str | None = "none",
    ) -> None:
        super().__init__(data=data, transform=transform)
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}.")
        self.views = int(views)
        self.image_key = image_key
        self.view_key = view_key
        self._view = 0
        self._start = deterministic_prefix_length(transform) if preprocessing_cache not in (None, "none") else 0
        self._heads = None  # dataset of the deterministic heads of the items
        if self._start:
            self._heads = preprocessing_dataset(data, _prefix(transform, self._start), preprocessing_cache)

    def randomize(self, data=None) -> None:
        self._view = int(self.R.randint(self.views)) if self.views > 1 else 0

    def view_of(self, index: int, view: int):
        """Item ``index`` under view ``view`` (deterministic)."""
        item = self.data[index]
        seed = view_seed(item_id(item, self.image_key), view)
        if self._heads is None:
            out = apply_view(self.transform, item, seed)
        else:  # the same seeding of the whole Compose, applied from its first random transform on the cached head
            self.transform.set_random_state(seed=int(seed))  # type: ignore[union-attr]
            out = self.transform(self._heads[index], start=self._start)  # type: ignore[call-arg]
        if isinstance(out, Mapping):
            out = dict(out)
            out[self.view_key] = int(view)
        return out

    def _transform(self, index: int):
        self.randomize()
        return self.view_of(index, self._view)


class CachedFeatureDataset(SeededViewDataset):
    """:class:`SeededViewDataset` that also returns the cached teacher features of the view it serves.

    It opens (and checks) the :class:`FeatureCache` at ``cache_dir`` for these ``data``, ``transform`` and
    teacher key; ``views`` is the number of views the cache holds. Item ``i`` is the dict of the transformed
    view ``k`` with ``features_key`` (default ``teacher_features``, the key RDTrainer/RDEvaluator use in
    place of the teacher's forward pass) = ``T(view_k(x_i))`` as a float32 tensor ``[*feature_shape]``
    and ``view_key`` = ``k``. The teacher itself is never built.

    Args:
        data, transform, image_key, view_key: as :class:`SeededViewDataset`.
        cache_dir: this split's cache folder.
        teacher, teacher_weights, teacher_options: the teacher's key (name, weights file, builder options);
            they must match the build, or :class:`FeatureCacheError` names the difference.
        features_key: output key of the features.
        verify: check every chunk's SHA-256 on opening.
        preprocessing_cache: as :class:`SeededViewDataset`.
    """

    def __init__(
        self,
        data: Sequence,
        transform: Callable | None,
        cache_dir: str | os.PathLike,
        teacher: str,
        teacher_weights: str | os.PathLike | None = None,
        teacher_options: Mapping | None = None,
        image_key: str = "image",
        features_key: str = TEACHER_FEATURES,
        view_key: str = TEACHER_VIEW,
        verify: bool = True,
        preprocessing_cache: str | None = "none",
    ) -> None:
        cache = FeatureCache(cache_dir, data, transform, teacher, teacher_weights, teacher_options, image_key)
        cache.open(verify=verify)
        super().__init__(data=data, transform=transform, views=cache.views, image_key=image_key, view_key=view_key,
                         preprocessing_cache=preprocessing_cache)  # fmt: skip
        self.cache = cache
        self.features_key = features_key

    def view_of(self, index: int, view: int):
        out = super().view_of(index, view)
        if not isinstance(out, Mapping):
            raise TypeError("CachedFeatureDataset needs dictionary transforms (items are dicts).")
        out[self.features_key] = torch.from_numpy(self.cache.features(index, view)).float()
        return out


def feature_cache_dataset(
    data: Sequence,
    transform: Callable | None,
    feature_cache: str | os.PathLike | None,
    split: str,
    teacher: str,
    teacher_weights: str | os.PathLike | None = None,
    teacher_options: Mapping | None = None,
    preprocessing_cache: str | None = "auto",
    **kwargs,
) -> Dataset:
    """The dataset a bundle trains on: :func:`preprocessing_dataset` when ``feature_cache`` is ``None`` (teacher in
    the loop), else a :class:`CachedFeatureDataset` over ``<feature_cache>/<split>``; either way the transform's
    deterministic head is computed once (``preprocessing_cache``, default ``"auto"``), only the random rest per epoch.

    Args:
        split: ``"training"`` or ``"validation"`` (the cache sub-folder).
        preprocessing_cache: ``"auto"``, ``"memory"``, a folder or ``"none"`` (see :func:`preprocessing_dataset`).
        kwargs: passed to :class:`CachedFeatureDataset`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if feature_cache is None:
        return preprocessing_dataset(data, transform, preprocessing_cache)
    return CachedFeatureDataset(
        data, transform, os.path.join(os.fspath(feature_cache), split), teacher, teacher_weights, teacher_options,
        preprocessing_cache=preprocessing_cache, **kwargs,
    )  # fmt: skip


def cached_feature_shape(feature_cache: str | os.PathLike | None, split: str = "training") -> tuple[int, ...] | None:
    """The teacher feature shape (without batch) recorded in a cache's manifest; ``None`` when no cache."""
    if feature_cache is None:
        return None
    manifest = FeatureCache.read_manifest(os.path.join(os.fspath(feature_cache), split))
    if manifest.get("feature_shape") is None:
        raise FeatureCacheError(f"Feature cache {feature_cache}/{split} holds no features yet: build it first.")
    return tuple(manifest["feature_shape"])

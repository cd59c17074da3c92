"""Datasets that serve seeded augmented views, and the cached teacher features of exactly those views.

The deterministic head of a split's transform (reading, channel handling, intensity scaling, resizing: everything
before the first random transform) is computed once and kept, in memory (MONAI ``CacheDataset``) or on disk
(MONAI ``PersistentDataset``); every epoch only applies the random rest. See :func:`preprocessing_dataset`.
"""

from __future__ import annotations

import functools
import logging
import os
from copy import deepcopy
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
from monai_rd.data.transform_split import apply_rest, deterministic_head, deterministic_path
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
VIEW_CACHE_MODES = ("auto", "memory", "none")
AUTO_CACHE_BYTES = 4 << 30  # "auto" keeps at most this much (or a quarter of the available memory, if less)
logger = logging.getLogger(__name__)


def deterministic_prefix_length(transform: Callable | None) -> int:
    """How many leading transforms of a ``Compose`` are deterministic (MONAI ``CacheDataset``'s own rule: up to the
    first ``RandomizableTrait`` or non-``Transform`` callable); 0 for anything that is not a ``Compose``.
    The datasets here cache deeper, into nested ``Compose`` objects (:mod:`monai_rd.data.transform_split`)."""
    if not isinstance(transform, Compose):
        return 0
    first = transform.get_index_of_first(lambda t: isinstance(t, RandomizableTrait) or not isinstance(t, Transform))
    return len(transform.transforms) if first is None else int(first)


def _has_head(path: list[int]) -> bool:
    return bool(path) and (path[0] > 0 or len(path) > 1)


class _DeepSplit:
    """``CacheDataset``/``PersistentDataset`` mixin: cache the deterministic head at any depth of nested plain
    ``Compose`` objects (:func:`deterministic_path`), then run the rest with the same transform objects (seeded as
    the whole transform), so an item equals ``transform(item)`` bit for bit for the same random state."""

    def _split(self) -> tuple[list[int], Compose]:
        split = getattr(self, "_deep", None)
        if split is None:  # computed once; the cache may be filled from several threads (same values)
            path = deterministic_path(self.transform)
            split = self._deep = (path, deterministic_head(self.transform, path))
        return split

    def _run_head(self, item):
        return self._split()[1](item, threading=True)

    def _run_rest(self, data):
        return apply_rest(self.transform, data, self._split()[0])


class _DeepCacheDataset(_DeepSplit, CacheDataset):
    def _load_cache_item(self, idx: int):
        item = self._run_head(self.data[idx])
        if self.as_contiguous:
            from monai.transforms import convert_to_contiguous

            item = convert_to_contiguous(item, memory_format=torch.contiguous_format)
        return item

    def _transform(self, index: int):
        if index % len(self) >= self.cache_num:  # not cached: the whole transform, as MONAI does
            return Dataset._transform(self, index)
        data = self._cache[index]
        if data is None:
            data = self._cache[index] = self._load_cache_item(index)
        return self._run_rest(deepcopy(data) if self.copy_cache is True else data)


class _DeepPersistentDataset(_DeepSplit, PersistentDataset):
    def _pre_transform(self, item_transformed):
        from monai.transforms import reset_ops_id

        item_transformed = self._run_head(item_transformed)
        if self.reset_ops_id:
            reset_ops_id(item_transformed)
        return item_transformed

    def _post_transform(self, item_transformed):
        return self._run_rest(item_transformed)


def _fingerprint_bytes(transform: Callable) -> bytes:
    """Key of the on-disk heads: the transform and where its head ends (a cache of a shallower head is not reused)."""
    return sha256_json({"transform": transform_fingerprint(transform), "head": deterministic_path(transform)}).encode()


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
    path = deterministic_path(transform)
    if mode == "none" or not _has_head(path):
        return Dataset(data=data, transform=transform)
    if mode in ("auto", "memory"):
        rate = _auto_cache_rate(data, deterministic_head(transform, path)) if mode == "auto" else 1.0
        return _DeepCacheDataset(data=data, transform=transform, cache_rate=rate, num_workers=available_cpus(),
                                 progress=False)  # fmt: skip
    os.makedirs(mode, exist_ok=True)
    return _DeepPersistentDataset(data=data, transform=transform, cache_dir=mode,
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
        view_cache: keep the served views themselves (each ``(item, k)`` is a deterministic image, so from the
            second time it is drawn no transform runs): ``"none"``, ``"memory"`` (every view) or ``"auto"`` (as
            many as fit in min(4 GiB, a quarter of the available memory), shared out among loader workers, each of
            which keeps its own). A kept view is the very tensor computed the first time (same values, same
            metadata), so training is unchanged bit for bit.
    """

    def __init__(
        self,
        data: Sequence,
        transform: Callable | None,
        views: int = 1,
        image_key: str = "image",
        view_key: str = TEACHER_VIEW,
        preprocessing_cache: str | None = "none",
        view_cache: str | None = "none",
    ) -> None:
        super().__init__(data=data, transform=transform)
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}.")
        self.views = int(views)
        self.image_key = image_key
        self.view_key = view_key
        self._view = 0
        self._path = deterministic_path(transform) if preprocessing_cache not in (None, "none") else []
        self._heads = None  # dataset of the deterministic heads of the items
        if _has_head(self._path):
            self._heads = preprocessing_dataset(data, deterministic_head(transform, self._path), preprocessing_cache)
        view_cache = "none" if view_cache is None else str(view_cache)
        if view_cache not in VIEW_CACHE_MODES:
            raise ValueError(f"view_cache must be one of {VIEW_CACHE_MODES}, got {view_cache!r}.")
        self.view_cache = view_cache
        self._kept: dict[tuple[int, int], Mapping] = {}
        self._kept_bytes = 0
        self._kept_budget: float | None = None

    def randomize(self, data=None) -> None:
        self._view = int(self.R.randint(self.views)) if self.views > 1 else 0

    def view_of(self, index: int, view: int):
        """Item ``index`` under view ``view`` (deterministic)."""
        kept = self._kept.get((index, view))
        if kept is not None:
            return dict(kept)
        item = self.data[index]
        seed = view_seed(item_id(item, self.image_key), view)
        if self._heads is None:
            out = apply_view(self.transform, item, seed)
        else:  # the same seeding of the whole Compose, applied after its deterministic head on the cached head
            self.transform.set_random_state(seed=int(seed))  # type: ignore[union-attr]
            out = apply_rest(self.transform, deepcopy(self._heads[index]), self._path)  # type: ignore[arg-type]
        if isinstance(out, Mapping):
            out = dict(out)
            out[self.view_key] = int(view)
            self._keep(index, view, out)
        return out

    def _keep(self, index: int, view: int, out: Mapping) -> None:
        if self.view_cache == "none":
            return
        if self._kept_budget is None:
            if self.view_cache == "memory":
                self._kept_budget = float("inf")
            else:
                available = _available_memory()
                budget = min(AUTO_CACHE_BYTES, available // 4) if available else AUTO_CACHE_BYTES
                info = torch.utils.data.get_worker_info()  # each worker process keeps its own views
                self._kept_budget = budget / (info.num_workers if info is not None else 1)
        size = sum(v.element_size() * v.nelement() for v in out.values() if isinstance(v, torch.Tensor))
        if self._kept_bytes + size <= self._kept_budget:
            self._kept[(index, view)] = dict(out)
            self._kept_bytes += size

    @property
    def views_kept(self) -> int:
        """How many ``(item, view)`` images this process keeps in memory (out of ``len(self) * views``)."""
        return len(self._kept)

    def fill_view_cache(self) -> int:
        """Compute and keep every ``(item, view)`` now, as the first epochs of a run would (``view_cache``
        ``"memory"`` or ``"auto"``, up to its budget); returns :attr:`views_kept`.

        Loader worker processes keep their own views (none are sent to them), so this warms only a loader that
        reads in this process (``num_workers=0``).
        """
        if self.view_cache == "none":
            raise ValueError("fill_view_cache needs view_cache 'memory' or 'auto'; this dataset keeps no views.")
        for index in range(len(self.data)):
            for view in range(self.views):
                self.view_of(index, view)
        return self.views_kept

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_kept"], state["_kept_bytes"], state["_kept_budget"] = {}, 0, None  # workers keep their own
        return state

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
        view_cache: as :class:`SeededViewDataset`; default ``"auto"``: from a feature cache there are only ``K``
            views per item, so after the first epochs no transform runs at all (the features are read per access).
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
        view_cache: str | None = "auto",
    ) -> None:
        cache = FeatureCache(cache_dir, data, transform, teacher, teacher_weights, teacher_options, image_key)
        cache.open(verify=verify)
        super().__init__(data=data, transform=transform, views=cache.views, image_key=image_key, view_key=view_key,
                         preprocessing_cache=preprocessing_cache, view_cache=view_cache)  # fmt: skip
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

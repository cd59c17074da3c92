"""Datasets that serve seeded augmented views, and the cached teacher features of exactly those views."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch
from monai.data import Dataset
from monai.transforms import Randomizable

from monai_rd.data.feature_cache import FeatureCache, FeatureCacheError, apply_view, item_id, view_seed
from monai_rd.utils.enums import RDKeys

__all__ = ["SeededViewDataset", "CachedFeatureDataset", "feature_cache_dataset", "cached_feature_shape"]

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
    """

    def __init__(
        self,
        data: Sequence,
        transform: Callable | None,
        views: int = 1,
        image_key: str = "image",
        view_key: str = TEACHER_VIEW,
    ) -> None:
        super().__init__(data=data, transform=transform)
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}.")
        self.views = int(views)
        self.image_key = image_key
        self.view_key = view_key
        self._view = 0

    def randomize(self, data=None) -> None:
        self._view = int(self.R.randint(self.views)) if self.views > 1 else 0

    def view_of(self, index: int, view: int):
        """Item ``index`` under view ``view`` (deterministic)."""
        item = self.data[index]
        out = apply_view(self.transform, item, view_seed(item_id(item, self.image_key), view))
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
    ) -> None:
        cache = FeatureCache(cache_dir, data, transform, teacher, teacher_weights, teacher_options, image_key)
        cache.open(verify=verify)
        super().__init__(data=data, transform=transform, views=cache.views, image_key=image_key, view_key=view_key)
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
    **kwargs,
) -> Dataset:
    """The dataset a bundle trains on: MONAI's ``Dataset`` when ``feature_cache`` is ``None`` (teacher in the
    loop), else a :class:`CachedFeatureDataset` over ``<feature_cache>/<split>``.

    Args:
        split: ``"training"`` or ``"validation"`` (the cache sub-folder).
        kwargs: passed to :class:`CachedFeatureDataset`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if feature_cache is None:
        return Dataset(data=data, transform=transform)
    return CachedFeatureDataset(
        data, transform, os.path.join(os.fspath(feature_cache), split), teacher, teacher_weights, teacher_options,
        **kwargs,
    )  # fmt: skip


def cached_feature_shape(feature_cache: str | os.PathLike | None, split: str = "training") -> tuple[int, ...] | None:
    """The teacher feature shape (without batch) recorded in a cache's manifest; ``None`` when no cache."""
    if feature_cache is None:
        return None
    manifest = FeatureCache.read_manifest(os.path.join(os.fspath(feature_cache), split))
    if manifest.get("feature_shape") is None:
        raise FeatureCacheError(f"Feature cache {feature_cache}/{split} holds no features yet: build it first.")
    return tuple(manifest["feature_shape"])



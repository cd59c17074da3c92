"""Split a (nested) MONAI ``Compose`` into its deterministic head and its random rest, without changing a view.

MONAI's ``CacheDataset`` caches a ``Compose`` up to its first random (or non-``Transform``) element at the top
level only. The bundles' transforms nest the modality preset (``Compose(LoadImaged, Compose(scale, crop, resize,
rgb, flips, affine, ...), EnsureTyped)``), so that rule caches the image reading alone and recomputes the fan crop
and the anti-aliased resize at every access. Here the split goes into nested plain ``Compose`` objects: the head
is everything before the first random transform at any depth, and :func:`apply_rest` runs what follows with the
same objects, in the same order, each nested ``Compose`` from where its head stopped. Seeding the outer
``Compose`` (``set_random_state``) reaches the random transforms exactly as before (deterministic transforms take
no seed), so ``apply_rest(t, head(x), path)`` equals ``t(x)`` for the same random state, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

from monai.transforms import Compose, RandomizableTrait, Transform

__all__ = ["deterministic_path", "deterministic_head", "apply_rest"]


def _splittable(transform) -> bool:
    """A plain, eager ``Compose`` (not ``OneOf``/``SomeOf``/``RandomOrder``, which choose what runs)."""
    return type(transform) is Compose and not transform.lazy


def deterministic_path(transform: Callable | None) -> list[int]:
    """Where the deterministic head of ``transform`` ends: ``[i]`` = before element ``i`` of the top ``Compose``;
    ``[i, j, ...]`` = inside its element ``i`` (a nested ``Compose``), before that one's element ``j``, and so on.
    ``[]`` when ``transform`` is not a splittable ``Compose``; ``[len]`` when it is all deterministic."""
    if not _splittable(transform):
        return []
    for i, t in enumerate(transform.transforms):
        if not isinstance(t, RandomizableTrait) and isinstance(t, Transform):
            continue
        if not _splittable(t):
            return [i]
        inner = deterministic_path(t)
        if inner != [len(t.transforms)]:
            return [i, *inner]
        # a nested Compose with nothing random in it is part of the head as a whole
    return [len(transform.transforms)]


def _prefix(transform: Compose, length: int) -> Compose:
    return Compose(transform.transforms[:length], map_items=transform.map_items, unpack_items=transform.unpack_items,
                   log_stats=transform.log_stats, lazy=transform.lazy, overrides=transform.overrides)  # fmt: skip


def deterministic_head(transform: Compose, path: list[int]) -> Compose:
    """The deterministic head as one ``Compose`` (of each level's prefix, in order); ``path`` from
    :func:`deterministic_path`."""
    levels, node = [], transform
    for depth, i in enumerate(path):
        levels.append(_prefix(node, i))
        if depth + 1 < len(path):
            node = node.transforms[i]
    return Compose(levels)


def apply_rest(transform: Compose, data, path: list[int]):
    """Run what follows the head of ``transform`` on ``data`` (the head's output), innermost level first."""
    i = path[0]
    if len(path) > 1:
        data = apply_rest(transform.transforms[i], data, path[1:])
        i += 1
    return transform(data, start=i) if i < len(transform.transforms) else data

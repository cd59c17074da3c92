"""Seeded stratified splits and MONAI datalist files."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

from monai_rd.utils import atomic_write_json, sha256_json

__all__ = ["stratified_split", "write_datalist", "datalist_hash", "finalize_datalist"]


def stratified_split(
    labels: Sequence[Hashable],
    val_fraction: float = 0.2,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list[int], list[int]]:
    """Indices of a seeded stratified train/validation split (4:1 by default), optionally group-aware.

    Without ``groups``, in each class ``round(n * val_fraction)`` items go to validation, at least one when
    the class has two or more items, so every class is seen on both sides.

    With ``groups`` (one id per item: a lesion, a patient, a cluster of duplicate images), whole groups are
    assigned to one side, so no group is ever split across training and validation. Each group is
    stratified by its most frequent label (ties broken by the label's string); in each class the shuffled
    groups that fit fill validation greedily up to ``round(n_items * val_fraction)`` items. A class with two
    or more groups always has at least one group on each side (the smallest group goes to validation when
    none fits).

    Args:
        labels: one hashable label (class index, name or a stratification key) per item.
        val_fraction: share of each class that goes to validation, in ``(0, 1)``.
        seed: the split seed; the same inputs and seed always give the same split.
        groups: optional group id per item (same length as ``labels``).

    Returns:
        ``(train_indices, val_indices)``, each sorted.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    if groups is not None:
        return _grouped_split(labels, groups, val_fraction, seed)
    by_class: dict[Hashable, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(by_class, key=str):
        idx = np.array(by_class[label])
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return sorted(train), sorted(val)


def _grouped_split(
    labels: Sequence[Hashable], groups: Sequence[Hashable], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    if len(groups) != len(labels):
        raise ValueError(f"groups has {len(groups)} entries but labels has {len(labels)}; give one group per item.")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    by_class: dict[Hashable, list[Hashable]] = defaultdict(list)
    for group in sorted(members, key=str):
        counts = Counter(labels[i] for i in members[group])
        top = max(counts.values())
        by_class[min((lab for lab, c in counts.items() if c == top), key=str)].append(group)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(by_class, key=str):
        class_groups = list(by_class[label])
        order = rng.permutation(len(class_groups))
        class_groups = [class_groups[k] for k in order]
        n_items = sum(len(members[g]) for g in class_groups)
        target = int(round(n_items * val_fraction))
        chosen: list[Hashable] = []
        n_val = 0
        for group in class_groups:
            if n_val >= target:
                break
            size = len(members[group])
            if n_val + size <= target:
                chosen.append(group)
                n_val += size
        if not chosen and len(class_groups) >= 2:  # no group fits: the smallest one (first in shuffled order)
            chosen = [min(class_groups, key=lambda g: len(members[g]))]
        if len(chosen) == len(class_groups) and len(class_groups) >= 2:
            chosen.pop()
        chosen_set = set(chosen)
        for group in class_groups:
            (val if group in chosen_set else train).extend(members[group])
    return sorted(train), sorted(val)


def write_datalist(datalist: dict, path: str | os.PathLike) -> str:
    """Write a MONAI datalist (``{"training": [...], "validation": [...], ...}``) atomically; returns the path."""
    return atomic_write_json(path, datalist)


def datalist_hash(datalist: dict) -> str:
    """A short content hash of a datalist, to name the exact split a run used."""
    return sha256_json(datalist)[:16]


def finalize_datalist(datalist: dict, datalist_file: str | os.PathLike | None = None) -> dict:
    """Add ``split_hash`` (of everything else in ``datalist``) and, if ``datalist_file`` is given, write it."""
    datalist.pop("split_hash", None)
    datalist["split_hash"] = datalist_hash(datalist)
    if datalist_file is not None:
        write_datalist(datalist, datalist_file)
    return datalist

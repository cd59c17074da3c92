"""Seeded stratified splits and MONAI datalist files."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

from ..utils import atomic_write_json, sha256_json

__all__ = ["stratified_split", "write_datalist", "datalist_hash"]


def stratified_split(
    labels: Sequence[Hashable], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Indices of a seeded stratified train/validation split (4:1 by default).

    In each class, ``round(n * val_fraction)`` items go to validation, at least one when the class has
    two or more items, so every class is seen on both sides.

    Returns:
        ``(train_indices, val_indices)``, each sorted.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
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


def write_datalist(datalist: dict, path: str | os.PathLike) -> str:
    """Write a MONAI datalist (``{"training": [...], "validation": [...], ...}``) atomically; returns the path."""
    return atomic_write_json(path, datalist)


def datalist_hash(datalist: dict) -> str:
    """A short content hash of a datalist, to name the exact split a run used."""
    return sha256_json(datalist)[:16]

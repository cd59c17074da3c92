"""Brain Tumor Classification (MRI, Bhuvaji et al. 2020, Kaggle) indexer."""

from __future__ import annotations

import os

from monai_rd.data.datalist import finalize_datalist, stratified_split
from monai_rd.data.indexers.folders import list_class_folders
from monai_rd.data.indexers.checks import require_dir

__all__ = ["BTC_CLASSES", "index_btc"]

BTC_CLASSES = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")


def index_btc(
    dataset_dir: str | os.PathLike,
    val_fraction: float = 0.2,
    seed: int = 0,
    datalist_file: str | os.PathLike | None = None,
    verify_images: bool = True,
) -> dict:
    """Index ``Training|Testing/{glioma_tumor,meningioma_tumor,no_tumor,pituitary_tumor}/*.jpg``.

    ``Training/`` gives ``training`` and ``validation`` by a seeded stratified split (4:1 by default);
    ``Testing/`` is kept whole as ``test``. Labels index :data:`BTC_CLASSES`.

    Args:
        dataset_dir: the folder holding ``Training/`` and ``Testing/``.
        val_fraction, seed: the split of ``Training/``.
        datalist_file: if given, the datalist is also written there (atomically).
        verify_images: open every image so an unreadable file fails now, by name.

    Raises:
        FileNotFoundError: ``Training/``, ``Testing/`` or a class folder is missing or empty.
        ValueError: anything besides the four class folders, a non-JPG file, or an unreadable image.
    """
    root = require_dir(os.fspath(dataset_dir), "BTC")
    unexpected = sorted(e for e in os.listdir(root) if not e.startswith(".") and e not in ("Training", "Testing"))
    if unexpected:
        raise ValueError(
            f"Unexpected entries {unexpected} in BTC folder {root!r}: expected only Training/ and Testing/."
        )
    split = {}
    for folder in ("Training", "Testing"):
        split[folder], _ = list_class_folders(
            os.path.join(root, folder), BTC_CLASSES, (".jpg", ".jpeg"), verify_images, f"BTC {folder}"
        )
    train = split["Training"]
    train_idx, val_idx = stratified_split([i["label"] for i in train], val_fraction=val_fraction, seed=seed)
    datalist = {
        "training": [train[i] for i in train_idx],
        "validation": [train[i] for i in val_idx],
        "test": split["Testing"],
        "classes": list(BTC_CLASSES),
    }
    return finalize_datalist(datalist, datalist_file)

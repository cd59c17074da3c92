"""Brain Tumor Classification (MRI, Bhuvaji et al. 2020, Kaggle) indexer."""

from __future__ import annotations

import os

from monai_rd.data.datalist import assign_splits, check_split_options, finalize_datalist
from monai_rd.data.indexers.layout import reject_unexpected, require_dir
from monai_rd.data.indexers.folders import list_class_folders

__all__ = ["BTC_CLASSES", "index_btc"]

BTC_CLASSES = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")


def index_btc(
    dataset_dir: str | os.PathLike,
    *,
    datalist_file: str | os.PathLike | None = None,
    verify_images: bool = True,
    **split_options,
) -> dict:
    """Index ``Training|Testing/{glioma_tumor,meningioma_tumor,no_tumor,pituitary_tumor}/*.jpg``.

    ``Testing/`` is the official ``test`` split, kept whole; ``Training/`` gives ``training`` and
    ``validation`` (a seeded stratified split, ``val_fraction`` of it, or fold ``fold`` of ``folds``). Under
    ``split_protocol="paper_4to1"`` all of ``Training/`` trains and ``validation`` is ``Testing/``, as in the
    paper. Labels index :data:`BTC_CLASSES`.

    Args:
        dataset_dir: the folder holding ``Training/`` and ``Testing/``.
        datalist_file: if given, the datalist is also written there (atomically).
        verify_images: open every image so an unreadable file fails now, by name.
        split_options: ``val_fraction``, ``seed``, ``split_protocol``, ``folds``, ``fold`` ... of
            :func:`~monai_rd.data.assign_splits` (``test_fraction``/``test_seed`` are unused: the test split is
            official).

    Raises:
        FileNotFoundError: ``Training/``, ``Testing/`` or a class folder is missing or empty.
        ValueError: anything besides the four class folders, a non-JPG file, or an unreadable image.
    """
    check_split_options(split_options)
    root = require_dir(os.fspath(dataset_dir), "BTC")
    entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
    reject_unexpected(entries, ("Training", "Testing"), f"BTC folder {root!r}", "expected only Training/ and Testing/")
    split = {}
    for folder in ("Training", "Testing"):
        split[folder], _ = list_class_folders(
            os.path.join(root, folder), BTC_CLASSES, (".jpg", ".jpeg"), verify_images, f"BTC {folder}"
        )
    items = split["Training"] + split["Testing"]
    official = [None] * len(split["Training"]) + ["test"] * len(split["Testing"])
    datalist = assign_splits(items, [i["label"] for i in items], None, official, **split_options)
    datalist["classes"] = list(BTC_CLASSES)
    return finalize_datalist(datalist, datalist_file)

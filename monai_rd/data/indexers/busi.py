"""BUSI (Breast Ultrasound Images, Al-Dhabyani et al. 2020) indexer."""

from __future__ import annotations

import os
import re

from monai_rd.data.datalist import assign_splits, check_split_options, finalize_datalist
from monai_rd.data.duplicates import group_near_duplicates
from monai_rd.data.checks import verify_image
from monai_rd.data.indexers.layout import reject_unexpected
from monai_rd.data.errors import BadInputError

__all__ = ["BUSI_CLASSES", "BUSI_MASK_PATTERN", "index_busi"]

BUSI_CLASSES = ("benign", "malignant", "normal")
_MASK = re.compile(r"_mask(_\d+)?\.png$", re.IGNORECASE)
#: BUSI's segmentation masks (``_mask.png``, ``_mask_1.png``): never images to classify (inference skips them too)
BUSI_MASK_PATTERN = _MASK


def _busi_root(dataset_dir: str) -> str:
    nested = os.path.join(dataset_dir, "Dataset_BUSI_with_GT")
    return nested if os.path.isdir(nested) else dataset_dir


def index_busi(
    dataset_dir: str | os.PathLike,
    *,
    datalist_file: str | os.PathLike | None = None,
    verify_images: bool = True,
    group_duplicates: bool = True,
    max_hash_distance: int = 20,
    **split_options,
) -> dict:
    """Index ``Dataset_BUSI_with_GT/{benign,malignant,normal}/<name> (N).png`` into a MONAI datalist.

    Masks (``_mask.png``, ``_mask_1.png`` ...) are excluded. BUSI has no official test split: a seeded,
    stratified hold-out ``test`` (``test_fraction``, seeded by ``test_seed``) is carved first, then ``validation``
    (``val_fraction`` of all images, or fold ``fold`` of ``folds``) from the rest; see
    :func:`~monai_rd.data.assign_splits` (``split_protocol="paper_4to1"`` gives the paper's 4:1 instead).

    BUSI holds exact and near duplicates (the same scan saved twice, sometimes resized). With
    ``group_duplicates`` the images are clustered by difference hash (:func:`group_near_duplicates`) and
    each cluster goes wholly to one split, so a duplicate never leaks from training into validation or test.
    The clusters with more than one image are listed in the datalist under ``duplicate_groups``.

    Args:
        dataset_dir: the ``Dataset_BUSI_with_GT`` folder or the folder that contains it.
        datalist_file: if given, the datalist is also written there (atomically).
        verify_images: open every image header so an unreadable file fails now, by name.
        group_duplicates: keep near-duplicate images on one side of the split.
        max_hash_distance: largest difference-hash distance (of 256 bits) between near-duplicates.
        split_options: ``val_fraction``, ``seed``, ``test_fraction``, ``split_protocol`` ... of
            :func:`~monai_rd.data.assign_splits`.

    Returns:
        ``{"training": [{"image", "label", "class_name"}...], "validation": [...], "test": [...], "classes": [...],
        "duplicate_groups": [[relative paths]...], "split_protocol", "test_split": "held-out", "split_hash": str}``
        with labels indexing ``BUSI_CLASSES``.

    Raises:
        FileNotFoundError: the folder does not exist or holds no image.
        ValueError: an unknown class folder, a non-PNG file, or an unreadable image (the path is named).
    """
    check_split_options(split_options)
    root = _busi_root(os.fspath(dataset_dir))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"BUSI folder {root!r} does not exist; pass the Dataset_BUSI_with_GT folder.")
    entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
    reject_unexpected(
        entries, BUSI_CLASSES, f"BUSI folder {root!r}", f"it must hold only the class folders {list(BUSI_CLASSES)}"
    )
    items = []
    for label, class_name in enumerate(BUSI_CLASSES):
        class_dir = os.path.join(root, class_name)
        if not os.path.isdir(class_dir):
            continue
        for name in sorted(os.listdir(class_dir)):
            path = os.path.join(class_dir, name)
            if name.startswith(".") or _MASK.search(name):
                continue
            if not name.lower().endswith(".png") or not os.path.isfile(path):
                raise BadInputError(f"Unexpected file {path!r} in BUSI: only PNG images and their masks belong there.")
            if verify_images:
                verify_image(path, "BUSI")
            items.append({"image": os.path.abspath(path), "label": label, "class_name": class_name})
    if not items:
        raise FileNotFoundError(
            f"No BUSI images under {root!r}: expected {list(BUSI_CLASSES)} folders holding '<class> (N).png' files."
        )
    groups = group_near_duplicates([i["image"] for i in items], max_hash_distance) if group_duplicates else None
    datalist = assign_splits(items, [i["label"] for i in items], groups, **split_options)
    clusters: dict[int, list[str]] = {}
    for item, group in zip(items, groups or []):
        clusters.setdefault(group, []).append(os.path.relpath(item["image"], os.path.abspath(root)))
    datalist.update(
        classes=list(BUSI_CLASSES), duplicate_groups=[names for names in clusters.values() if len(names) > 1]
    )
    return finalize_datalist(datalist, datalist_file)

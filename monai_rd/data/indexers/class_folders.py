"""Listing ``<root>/<class>/<image>`` folders of natural images (the base of the BTC indexer).

The generic class-folder indexer for images, DICOM and NIfTI is :func:`monai_rd.data.indexers.folders.index_class_folders`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from monai_rd.data.images import IMAGE_EXTENSIONS
from monai_rd.data.indexers.checks import require_dir, verify_image

__all__ = ["list_class_folders"]


def list_class_folders(
    root: str | os.PathLike,
    classes: Sequence[str] | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    verify_images: bool = True,
    what: str = "dataset",
) -> tuple[list[dict], list[str]]:
    """``([{"image", "label", "class_name"}...], classes)`` for ``<root>/<class>/<image>``.

    Args:
        root: the folder holding one sub-folder per class.
        classes: the class folders in label order; default the sub-folders sorted by name. Each must exist.
        extensions: accepted image extensions (lower case).
        verify_images: open every image so an unreadable file fails now, by name.
        what: the dataset's name in error messages.

    Raises:
        FileNotFoundError: ``root`` or a class folder is missing, or a class folder holds no image.
        ValueError: an unexpected entry (a folder that is not a class, a file at the top level, a
            non-image file or a sub-folder inside a class folder) or an unreadable image.
    """
    root = require_dir(os.fspath(root), what)
    entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
    if classes is None:
        classes = [e for e in entries if os.path.isdir(os.path.join(root, e))]
        if not classes:
            raise FileNotFoundError(f"No class folder in {what} folder {root!r}: expected <class>/<image> files.")
    classes = list(classes)
    unexpected = [e for e in entries if e not in classes]
    if unexpected:
        raise ValueError(
            f"Unexpected entries {unexpected} in {what} folder {root!r}: it must hold only the class folders {classes}."
        )
    exts = tuple(e.lower() for e in extensions)
    items = []
    for label, class_name in enumerate(classes):
        class_dir = require_dir(os.path.join(root, class_name), f"{what} class {class_name!r}")
        count = 0
        for name in sorted(os.listdir(class_dir)):
            if name.startswith("."):
                continue
            path = os.path.join(class_dir, name)
            if not os.path.isfile(path) or not name.lower().endswith(exts):
                raise ValueError(f"Unexpected entry {path!r} in {what}: class folders hold only {list(exts)} images.")
            if verify_images:
                verify_image(path, what)
            items.append({"image": os.path.abspath(path), "label": label, "class_name": class_name})
            count += 1
        if not count:
            raise FileNotFoundError(f"Class folder {class_dir!r} of {what} holds no image.")
    return items, classes

"""Listing the image files of a folder for inference."""

from __future__ import annotations

import os
import re

from monai_rd.data.readers.natural import NATURAL_IMAGE_SUFFIXES as IMAGE_EXTENSIONS  # what the reader decodes

__all__ = ["IMAGE_EXTENSIONS", "list_images"]


def list_images(
    folder: str | os.PathLike, extensions: tuple[str, ...] = IMAGE_EXTENSIONS, exclude: str | re.Pattern | None = None
) -> list[dict]:
    """``[{"image": path}]`` for every image under ``folder`` (recursively, sorted).

    ``exclude``: a regular expression; files whose name it matches (``re.search``) are left out, e.g. a
    dataset's masks (:data:`monai_rd.data.indexers.busi.BUSI_MASK_PATTERN`).

    Raises:
        FileNotFoundError: ``folder`` does not exist or holds no image with one of ``extensions``.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Input folder {folder!r} does not exist.")
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(extensions) and not name.startswith(".")
        and not (exclude is not None and re.search(exclude, name))
    )  # fmt: skip
    if not files:
        raise FileNotFoundError(f"No image ({', '.join(extensions)}) under {folder!r}.")
    return [{"image": os.path.abspath(p)} for p in files]

"""Checks shared by the dataset indexers: readable images, CSV tables with the expected header, folders."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from PIL import Image

__all__ = ["verify_image", "verify_volume", "read_csv_table", "require_dir", "reject_unexpected", "find_file"]


def verify_image(path: str, dataset: str = "") -> None:
    """Open the image header and check the file's integrity; raise ``ValueError`` naming ``path`` if unreadable."""
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:
        where = f" in {dataset}" if dataset else ""
        raise ValueError(f"Unreadable image {path!r}{where}: {e}. Remove or replace the file.") from e


def verify_volume(path: str, dims: Sequence[int] = (3, 4), what: str = "a volume") -> tuple[int, ...]:
    """Read the NIfTI header of ``path`` (no voxel data); raise ``ValueError`` naming ``path`` if it is unreadable or
    its number of dimensions is not in ``dims``. Returns the shape."""
    import nibabel as nib

    try:
        shape = tuple(nib.load(path).shape)
    except Exception as e:
        raise ValueError(f"{path!r} is not a readable NIfTI volume ({type(e).__name__}: {e}).") from e
    if len(shape) not in dims:
        raise ValueError(f"{path!r} has shape {shape}: not {what}.")
    return shape


def require_dir(path: str, what: str) -> str:
    """``path`` if it is a folder, else ``FileNotFoundError`` saying what the folder should be."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} folder {path!r} does not exist.")
    return path


def reject_unexpected(entries: Sequence[str], allowed: Sequence[str], where: str, expected: str) -> None:
    """Raise ``ValueError`` naming the ``entries`` of a folder that are not ``allowed``.

    Args:
        entries: what the folder holds (hidden entries already left out), in the order to report them.
        allowed: the names that belong there.
        where: the folder, as named in the message (e.g. ``"BUSI folder '/data/busi'"``).
        expected: what the folder should hold, as said in the message.
    """
    unexpected = [e for e in entries if e not in allowed]
    if unexpected:
        raise ValueError(f"Unexpected entries {unexpected} in {where}: {expected}.")


def find_file(root: str, name: str, max_depth: int = 2) -> str | None:
    """The first ``name`` found in ``root`` or its sub-folders up to ``max_depth`` levels (sorted walk)."""
    base_depth = root.rstrip(os.sep).count(os.sep)
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if name in files:
            return os.path.join(folder, name)
        if folder.count(os.sep) - base_depth >= max_depth:
            dirs[:] = []
    return None


def read_csv_table(path: str, required: Sequence[str], what: str) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts, after checking that its header holds every ``required`` column.

    Header names are compared after stripping spaces and a UTF-8 byte-order mark; cells are stripped too.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty file, a missing column (the expected header is named), or a row with fewer cells
            than the header (its line number is named).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{what} file {path!r} is empty; expected a header with columns {list(required)}.")
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(
                f"{what} file {path!r} lacks the columns {missing}; expected a header with {list(required)}, "
                f"found {header}."
            )
        rows = []
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # blank line
            if len(cells) < len(header) and any(h for h in header[len(cells) :]):
                raise ValueError(
                    f"{what} file {path!r}, line {line}: {len(cells)} cells but the header has {len(header)} columns."
                )
            rows.append({h: c.strip() for h, c in zip(header, cells) if h})
    if not rows:
        raise ValueError(f"{what} file {path!r} has a header but no rows.")
    return rows

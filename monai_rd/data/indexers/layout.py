"""Layout checks shared by the dataset indexers: CSV tables with the expected header, folders and their entries.

A bad layout raises :class:`~monai_rd.data.BadInputError` (a ``ValueError``); a missing file or folder
``FileNotFoundError``. Images and volumes are checked by the one validator, :mod:`monai_rd.data.checks`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from monai_rd.data.errors import BadInputError

__all__ = ["read_csv_table", "require_dir", "reject_unexpected", "find_file"]


def require_dir(path: str, what: str) -> str:
    """``path`` if it is a folder, else ``FileNotFoundError`` saying what the folder should be."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} folder {path!r} does not exist.")
    return path


def reject_unexpected(entries: Sequence[str], allowed: Sequence[str], where: str, expected: str) -> None:
    """Raise :class:`~monai_rd.data.BadInputError` naming the ``entries`` of a folder that are not ``allowed``.

    Args:
        entries: what the folder holds (hidden entries already left out), in the order to report them.
        allowed: the names that belong there.
        where: the folder, as named in the message (e.g. ``"BUSI folder '/data/busi'"``).
        expected: what the folder should hold, as said in the message.
    """
    unexpected = [e for e in entries if e not in allowed]
    if unexpected:
        raise BadInputError(f"Unexpected entries {unexpected} in {where}: {expected}.")


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
        BadInputError: an empty file, a missing column (the expected header is named), or a row with fewer cells
            than the header (its line number is named).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise BadInputError(f"{what} file {path!r} is empty; expected a header with columns {list(required)}.")
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise BadInputError(
                f"{what} file {path!r} lacks the columns {missing}; expected a header with {list(required)}, "
                f"found {header}."
            )
        rows = []
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # blank line
            if len(cells) < len(header) and any(h for h in header[len(cells) :]):
                raise BadInputError(
                    f"{what} file {path!r}, line {line}: {len(cells)} cells but the header has {len(header)} columns."
                )
            rows.append({h: c.strip() for h, c in zip(header, cells) if h})
    if not rows:
        raise BadInputError(f"{what} file {path!r} has a header but no rows.")
    return rows

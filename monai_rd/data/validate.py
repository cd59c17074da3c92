"""Check that every input of an inference run can be read, before any prediction is made."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from monai_rd.utils import atomic_write_text

__all__ = ["UnreadableInputsError", "check_readable", "expand_inputs"]

logger = logging.getLogger(__name__)


class UnreadableInputsError(ValueError):
    """Some inputs cannot be read; ``errors`` maps each such file to its reader's message."""

    def __init__(self, message: str, errors: dict[str, str]) -> None:
        super().__init__(message)
        self.errors = errors


def _report(errors: dict, n_total: int, n_readable: int, errors_file, on_error: str) -> None:
    """Write/remove the errors CSV; raise (or warn, when skipping) with every bad file listed."""
    if errors_file is not None:
        errors_file = os.fspath(errors_file)
        if errors:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["file", "error"])
            writer.writerows(sorted(errors.items()))
            atomic_write_text(errors_file, buffer.getvalue())
        elif os.path.exists(errors_file):
            os.remove(errors_file)
    if errors:
        listing = "\n".join(f"  {f}: {m}" for f, m in sorted(errors.items()))
        where = f" (also written to {errors_file})" if errors_file else ""
        message = f"{len(errors)} of {n_total} input file(s) cannot be read{where}:\n{listing}"
        if on_error == "raise" or not n_readable:
            raise UnreadableInputsError(
                message + "\nFix or remove these files, or set on_error to 'skip' to predict the others.", errors
            )
        logger.warning("%s\nSkipping them; predicting the %d readable file(s).", message, n_readable)


def check_readable(
    items: Sequence[dict],
    loader: Callable[[dict], Any],
    key: str = "image",
    errors_file: str | os.PathLike | None = None,
    on_error: str = "raise",
) -> list[dict]:
    """Try ``loader`` on every item and return the items it can read.

    Every item is tried (a bad file never stops the check half way), so all bad inputs are reported at
    once: each unreadable ``item[key]`` is listed with its reader's error in one message and, when
    ``errors_file`` is given, in a CSV (``file,error``) written atomically.

    Args:
        items: datalist entries, e.g. ``[{"image": "/data/a.png"}, ...]``.
        loader: the inference pipeline's loading transform (e.g. its ``LoadImaged``), so the check uses the
            very reader that will be used for prediction.
        key: the entry key holding the file.
        errors_file: optional CSV for the per-file error list (removed when every file is readable, so a
            stale list never survives a clean run).
        on_error: ``"raise"`` refuses the whole input (:class:`UnreadableInputsError`); ``"skip"`` logs the
            list and returns only the readable items (the errors CSV is still written).

    Raises:
        UnreadableInputsError: on any unreadable item with ``on_error="raise"``, or if nothing is readable.
        ValueError: ``items`` is empty or ``on_error`` is unknown.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    if not items:
        raise ValueError("No input to predict: the folder or datalist is empty.")
    readable, errors = [], {}
    for item in items:
        name = str(item.get(key, item))
        if not os.path.isfile(name) and not os.path.isdir(name):
            errors[name] = "file does not exist"
            continue
        if os.path.isfile(name) and os.path.getsize(name) == 0:
            errors[name] = "empty file (0 bytes)"
            continue
        try:
            loader(dict(item))
        except Exception as e:  # any reader failure is reported with the file, whatever its type
            cause = e.__cause__ or e
            errors[name] = f"{type(cause).__name__}: {cause}".replace("\n", " ")[:300]
            continue
        readable.append(item)
    _report(errors, len(items), len(readable), errors_file, on_error)
    return readable


def expand_inputs(
    folder: str | os.PathLike,
    errors_file: str | os.PathLike | None = None,
    on_error: str = "raise",
    **expand_options,
) -> list[dict]:
    """Inference items ``{"image": path, "slice": k}`` for every source directly under ``folder``.

    Each file (DICOM, NIfTI, PNG/JPEG/BMP/TIFF) and each sub-folder (a DICOM series folder) is expanded by
    :func:`~monai_rd.data.expand_source` (``expand_options``: ``slice_mode``, ``slice_axis``, ...; it decodes
    images and DICOM files). Every source is tried; empty, unsupported or unreadable ones are reported
    together as in :func:`check_readable` (one :class:`UnreadableInputsError`, or skipped with
    ``on_error="skip"``, and ``errors_file``).
    """
    from monai_rd.data.indexers.folders import expand_source

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Input folder {folder!r} does not exist.")
    sources = sorted(os.path.join(folder, n) for n in os.listdir(folder) if not n.startswith("."))
    if not sources:
        raise ValueError(f"No input to predict: {folder!r} is empty.")
    items, errors, good = [], {}, []
    for source in sources:
        if os.path.isfile(source) and os.path.getsize(source) == 0:
            errors[source] = "empty file (0 bytes)"
            continue
        try:
            pairs = expand_source(source, **expand_options)
        except Exception as e:  # any reader failure is reported with the source, whatever its type
            errors[source] = f"{type(e).__name__}: {e}".replace("\n", " ")[:300]
            continue
        good.append(source)
        items += [{"image": p, "slice": int(k)} for p, k in pairs]
    _report(errors, len(sources), len(good), errors_file, on_error)
    return items

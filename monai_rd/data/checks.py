"""Input checks, one vocabulary: every bad input is a :class:`BadInputError`, ``on_bad_input`` is ``"error"|"skip"``.

- :func:`validate_datalist` (training: every file decodes with the very reader the bundles' ``LoadImaged`` uses,
  every label is in the class list, the splits are usable), run at bundle start around the indexer call, so a
  broken file is reported once, up front, naming the file and the reason -- not as a traceback from a
  data-loader worker epochs later, and never silently trained on;
- :func:`verify_image` / :func:`verify_volume` (indexing: the same per-file check, one file at a time, raised at
  once; the indexers call them);
- :func:`check_readable` / :func:`expand_inputs` (inference: every input goes through the inference pipeline's
  own loading transform before any prediction is made).

Every input is tried (a bad one never stops a check half way), so all bad inputs are reported at once.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from monai_rd.data.datalist import shortfall_message
from monai_rd.data.errors import BadInputError, SplitTooSmallError
from monai_rd.data.readers.dicom import DicomReadError
from monai_rd.data.readers.medical import MedicalImageReader, UnsupportedFileError, source_kind
from monai_rd.data.readers.natural import ImageReadError
from monai_rd.data.readers.nifti import NiftiReadError
from monai_rd.utils import atomic_write_json, atomic_write_text

__all__ = [
    "BadInputError", "SplitTooSmallError", "UnreadableInputsError", "ON_BAD_INPUT", "validate_datalist", "check_item",
    "verify_image", "verify_volume", "check_readable", "expand_inputs",
]  # fmt: skip

logger = logging.getLogger(__name__)
ON_BAD_INPUT = ("error", "skip")
READ_ERRORS = (ImageReadError, DicomReadError, NiftiReadError, UnsupportedFileError)


#: the name inference used before the two checks shared one vocabulary (the same class).
UnreadableInputsError = BadInputError


def _require_on_bad_input(on_bad_input: str) -> None:
    if on_bad_input not in ON_BAD_INPUT:
        raise ValueError(f"on_bad_input must be one of {ON_BAD_INPUT}, got {on_bad_input!r}.")


def _spatial_shape(arr: np.ndarray, kind: str) -> tuple[int, ...]:
    if kind == "image":  # [H, W] or [H, W, C]
        return tuple(arr.shape[:2])
    return tuple(s for s in arr.shape if s > 1) or tuple(arr.shape)


def _check_file(path: str, min_size: int, decode: bool, cache: dict, reader: MedicalImageReader) -> str | None:
    """The reason ``path`` is unusable, or ``None``; decoded by ``reader``, the reader training uses."""
    if path in cache:
        return cache[path]
    reason = None
    if not os.path.exists(path):
        reason = "no such file or folder"
    elif os.path.isfile(path) and os.path.getsize(path) == 0:
        reason = "empty file (0 bytes)"
    else:
        try:
            kind = source_kind(path)
            if decode:
                arr, _ = reader.get_data(reader.read(path))
                if kind == "nifti" and arr.ndim == 4 and arr.shape[3] > 1:  # never a silently dropped volume
                    reason = (
                        f"a 4D series of {arr.shape[3]} volumes: pick one with the NIfTI reader's volume_index "
                        "(rd_clinical: --nifti_volume_index K, 0-based; elsewhere save the volume you mean as a 3D NIfTI); "
                        "volumes are not read as channels"
                    )
                elif kind == "image" and arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4):
                    reason = f"{arr.shape[2]} channels (1-4 expected: grey, grey+alpha, RGB, RGBA)"
                elif min(sorted(_spatial_shape(arr, kind))[-2:]) < min_size:  # volumes: the largest plane
                    reason = f"image of {'x'.join(map(str, _spatial_shape(arr, kind)))} px is below min_size={min_size}"
                elif not np.isfinite(arr).all():
                    reason = "holds NaN/Inf pixel values"
        except READ_ERRORS as e:
            reason = str(e)
        except Exception as e:  # a reader bug must still name the file, not surface as a bare traceback
            reason = f"cannot be read ({type(e).__name__}: {e})"
    cache[path] = reason
    return reason


def _check_label(label: Any, num_classes: int | None) -> str | None:
    if num_classes is None:
        return None
    if isinstance(label, (bool, np.bool_)):
        return f"label {label!r} is a boolean, expected a class index or a multi-hot list"
    if isinstance(label, (int, np.integer)):
        if 0 <= int(label) < num_classes:
            return None
        return f"label {int(label)} is outside the class list (0..{num_classes - 1})"
    if isinstance(label, Sequence) and not isinstance(label, str):
        if len(label) != num_classes:
            return f"multi-hot label has {len(label)} entries, the class list has {num_classes}"
        if any(v not in (0, 1) or isinstance(v, str) for v in label):
            return "multi-hot label holds values other than 0/1"
        return None
    return f"label {label!r} ({type(label).__name__}) is not a class index or a multi-hot list"


def check_item(
    item: Mapping, num_classes: int | None = None, image_key: str = "image", label_key: str = "label",
    min_size: int = 8, decode: bool = True, cache: dict | None = None, reader: MedicalImageReader | None = None,
) -> list[str]:  # fmt: skip
    """Every reason one datalist entry is unusable (empty list: fine); ``reader`` decodes (default
    :class:`~monai_rd.data.MedicalImageReader`, what the bundles' ``LoadImaged`` uses)."""
    cache = {} if cache is None else cache
    reader = MedicalImageReader() if reader is None else reader
    if not isinstance(item, Mapping):
        return [f"entry is a {type(item).__name__}, not a mapping with '{image_key}' and '{label_key}'"]
    reasons = []
    image = item.get(image_key)
    if image is None:
        reasons.append(f"no '{image_key}' key")
    else:
        paths = image if isinstance(image, (list, tuple)) else [image]
        for p in paths:
            if not isinstance(p, (str, os.PathLike)):
                reasons.append(f"'{image_key}' is a {type(p).__name__}, not a path")
                continue
            r = _check_file(os.fspath(p), min_size, decode, cache, reader)
            if r is not None:
                reasons.append(r if os.fspath(p) in r else f"{os.fspath(p)!r}: {r}")
    if label_key not in item:
        reasons.append(f"no '{label_key}' key")
    else:
        r = _check_label(item[label_key], num_classes)
        if r is not None:
            reasons.append(f"'{label_key}': {r}")
    return reasons


def verify_image(
    path: str, dataset: str = "", min_size: int = 1, reader: MedicalImageReader | None = None
) -> None:  # fmt: skip
    """Raise :class:`BadInputError` naming ``path`` if it is unusable: the check :func:`validate_datalist` runs on
    each file (exists, not empty, decodes with ``reader``, 1-4 channels, at least ``min_size`` px, finite); the
    indexers run it on every image they list (``verify_images=True``).

    Args:
        path: the image (or DICOM/NIfTI) file.
        dataset: the dataset named in the message (e.g. ``"BUSI"``).
        min_size: the smallest accepted side in px (default 1: indexing refuses no size; the datalist check's
            ``min_size`` does).
        reader: the ``ImageReader`` that decodes (default :class:`~monai_rd.data.MedicalImageReader`).
    """
    reader = MedicalImageReader() if reader is None else reader
    reason = _check_file(os.fspath(path), min_size, True, {}, reader)
    if reason is not None:
        where = f" in {dataset}" if dataset else ""
        raise BadInputError(f"Unreadable image {path!r}{where}: {reason}. Remove or replace the file.", {path: reason})


def verify_volume(path: str, dims: Sequence[int] = (3, 4), what: str = "a volume") -> tuple[int, ...]:
    """Read the NIfTI header of ``path`` (no voxel data); raise :class:`BadInputError` naming ``path`` if it is
    unreadable or its number of dimensions is not in ``dims``. Returns the shape."""
    import nibabel as nib

    try:
        shape = tuple(nib.load(path).shape)
    except Exception as e:
        raise BadInputError(f"{path!r} is not a readable NIfTI volume ({type(e).__name__}: {e}).") from e
    if len(shape) not in dims:
        raise BadInputError(f"{path!r} has shape {shape}: not {what}.")
    return shape


def validate_datalist(
    datalist: Mapping,
    class_names: Sequence[str] | None = None,
    on_bad_input: str = "error",
    splits: Sequence[str] = ("training", "validation"),
    image_key: str = "image",
    label_key: str = "label",
    min_size: int = 8,
    decode: bool = True,
    datalist_file: str | None = None,
    reader: MedicalImageReader | None = None,
) -> dict:
    """Check every entry of ``datalist[split]`` and the splits themselves; return the datalist to train on.

    Per entry: the image path(s) exist, are not empty, decode with ``reader`` (default
    :class:`~monai_rd.data.MedicalImageReader`: PNG/JPEG/BMP/TIFF, DICOM file or series folder, NIfTI; the
    reader the bundles' ``LoadImaged`` uses, so what is validated is what is trained on) with 1-4 channels (what
    ``EnsureRGB`` accepts), at least ``min_size`` px per axis of an image (along the two largest axes of a volume,
    which is sliced) and finite values; the label is a class index in ``[0, len(class_names))`` or a multi-hot list of that
    length. Per split: not empty and, for single-label data, ``training`` holds at least two classes.

    Args:
        datalist: ``{"training": [...], "validation": [...], ...}`` as the indexers write it.
        class_names: the class list (labels are checked against its length); default ``datalist["classes"]``;
            label checks are skipped when neither is given.
        on_bad_input: ``"error"`` (default): raise :class:`BadInputError` listing every bad entry (split,
            index, file, reason). ``"skip"``: drop bad entries, log each one as a warning and record them
            under ``datalist["skipped"]`` (written back to ``datalist_file``, which the bundles log to MLflow
            as an artifact). Empty or one-class splits raise in both modes.
        decode: fully decode every file (default). ``False`` only checks existence and size (faster).
        datalist_file: the datalist JSON to update with the ``skipped`` record (atomically).
        reader: the ``ImageReader`` that decodes (default :class:`~monai_rd.data.MedicalImageReader`).

    Raises:
        BadInputError: the message names each bad file/key; ``ValueError`` for a wrong ``on_bad_input``.
    """
    _require_on_bad_input(on_bad_input)
    if not isinstance(datalist, Mapping):
        raise BadInputError(f"the datalist is a {type(datalist).__name__}, expected a mapping of split -> entries.")
    if class_names is None:
        class_names = datalist.get("classes")
    num_classes = None if class_names is None else len(class_names)
    out = dict(datalist)
    skipped, problems, cache = [], [], {}
    reader = MedicalImageReader() if reader is None else reader
    for split in splits:
        entries = datalist.get(split)
        if entries is None:
            raise BadInputError(f"the datalist has no '{split}' split (it has {sorted(datalist)}).")
        kept = []
        for i, item in enumerate(entries):
            reasons = check_item(item, num_classes, image_key, label_key, min_size, decode, cache, reader)
            if reasons:
                where = item.get(image_key, "?") if isinstance(item, Mapping) else "?"
                record = {"split": split, "index": i, "image": str(where), "reasons": reasons}
                (skipped if on_bad_input == "skip" else problems).append(record)
            else:
                kept.append(item)
        out[split] = kept
    if problems:
        lines = [f"  {p['split']}[{p['index']}] {p['image']}: {'; '.join(p['reasons'])}" for p in problems[:50]]
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise BadInputError(
            f"{len(problems)} unusable datalist entr{'y' if len(problems) == 1 else 'ies'}:\n" + "\n".join(lines) + more
            + "\nFix or remove these files, or set on_bad_input to 'skip' to train without them (they are logged).",
            {p["image"]: "; ".join(p["reasons"]) for p in problems},
        )  # fmt: skip
    for record in skipped:
        logger.warning(f"on_bad_input=skip: skipped {record['split']}[{record['index']}] {record['image']}: "
                       f"{'; '.join(record['reasons'])}")  # fmt: skip
    for split in splits:
        if not out[split] and datalist.get("split_shortfall") and not skipped:
            why = shortfall_message(datalist["split_shortfall"], class_names)
            raise SplitTooSmallError(f"the '{split}' split is empty: {why}")
        if not out[split]:
            raise BadInputError(f"the '{split}' split is empty{' after skipping bad inputs' if skipped else ''}: "
                                "nothing to train/validate on.")  # fmt: skip
    if num_classes is not None:
        labels = [e.get(label_key) for e in out.get("training", [])]
        if labels and all(isinstance(v, (int, np.integer)) for v in labels) and len(set(map(int, labels))) < 2:
            names = [class_names[int(labels[0])]] if 0 <= int(labels[0]) < num_classes else labels[:1]
            raise BadInputError(f"the 'training' split holds a single class {names}: a classifier needs at least two.")
    if skipped:
        out["skipped"] = skipped
        logger.warning(f"on_bad_input=skip: {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} skipped "
                       f"(listed under 'skipped' in {datalist_file or 'the datalist'}).")  # fmt: skip
        if datalist_file:
            atomic_write_json(datalist_file, out)
    return out


def _read_listed(errors_file) -> dict[str, str]:
    """The ``file -> error`` rows of an errors CSV written earlier in this run (empty when there is none)."""
    if errors_file is None or not os.path.isfile(errors_file):
        return {}
    with open(errors_file, encoding="utf-8", newline="") as f:
        return {row["file"]: row["error"] for row in csv.DictReader(f)}


def _report(
    errors: dict, n_total: int, n_readable: int, errors_file, on_bad_input: str, listed: Mapping | None = None
) -> None:
    """Write/remove the errors CSV; raise (or warn, when skipping) with every bad file listed.

    ``listed``: rows an earlier check of the same run refused (kept in the CSV, after which ``errors`` are added).
    """
    if errors_file is not None:
        errors_file = os.fspath(errors_file)
        rows = {**(listed or {}), **errors}
        if rows:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["file", "error"])
            writer.writerows(sorted(rows.items()))
            atomic_write_text(errors_file, buffer.getvalue())
        elif os.path.exists(errors_file):
            os.remove(errors_file)
    if errors:
        listing = "\n".join(f"  {f}: {m}" for f, m in sorted(errors.items()))
        where = f" (also written to {errors_file})" if errors_file else ""
        message = f"{len(errors)} of {n_total} input file(s) cannot be read{where}:\n{listing}"
        if on_bad_input == "error" or not n_readable:
            raise BadInputError(
                message + "\nFix or remove these files, or set on_bad_input to 'skip' to predict the others.", errors
            )
        logger.warning("%s\nSkipping them; predicting the %d readable file(s).", message, n_readable)


def _non_finite(value: Any) -> str | None:
    """Why ``value`` (an array or tensor) cannot be predicted on: ``"k of n values are NaN/Inf"``, or ``None``."""
    try:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    except Exception:  # not an array (a path, a dict): nothing to check
        return None
    if arr.dtype.kind not in "fc":
        return None
    bad = int(arr.size - np.isfinite(arr).sum())
    if not bad:
        return None
    return (f"holds NaN/Inf pixel values ({bad} of {arr.size} after loading and preprocessing): a prediction on "
            "them would be NaN; fix or remove the file")  # fmt: skip


def check_readable(
    items: Sequence[dict],
    loader: Callable[[dict], Any],
    key: str = "image",
    errors_file: str | os.PathLike | None = None,
    on_bad_input: str = "error",
    keep_listed: bool = False,
) -> list[dict]:
    """Try ``loader`` on every item and return the items it can read and whose values are all finite.

    Every item is tried (a bad file never stops the check half way), so all bad inputs are reported at
    once: each unreadable ``item[key]`` is listed with its reader's error in one message and, when
    ``errors_file`` is given, in a CSV (``file,error``) written atomically. An item whose loaded (and, when
    ``loader`` is the whole preprocessing, preprocessed) ``key`` holds a NaN or Inf value is refused the same way
    (``holds NaN/Inf pixel values``), as training refuses it: never a label predicted from NaN.

    Args:
        items: datalist entries, e.g. ``[{"image": "/data/a.png"}, ...]``.
        loader: the inference pipeline's loading transform or whole preprocessing, so the check uses the very
            reader (and transforms) that will be used for prediction.
        key: the entry key holding the file.
        errors_file: optional CSV for the per-file error list (removed when every file is readable, so a
            stale list never survives a clean run).
        on_bad_input: ``"error"`` refuses the whole input (:class:`BadInputError`); ``"skip"`` logs the
            list and returns only the readable items (the errors CSV is still written).
        keep_listed: ``errors_file`` was written by an earlier check of this same run (:func:`expand_inputs`):
            keep its rows and add this check's, so the CSV lists every file refused at any check.

    Raises:
        BadInputError: on any unreadable item with ``on_bad_input="error"``, or if nothing is readable.
        ValueError: ``items`` is empty or ``on_bad_input`` is unknown.
    """
    _require_on_bad_input(on_bad_input)
    listed = _read_listed(errors_file) if keep_listed else {}
    if not items:
        if listed:  # every source was refused by the earlier check
            raise BadInputError(f"No readable input: all {len(listed)} input(s) were refused (listed in "
                                f"{os.fspath(errors_file)}).", listed)  # fmt: skip
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
            loaded = loader(dict(item))
        except Exception as e:  # any reader failure is reported with the file, whatever its type
            cause = e.__cause__ or e
            errors[name] = f"{type(cause).__name__}: {cause}".replace("\n", " ")[:300]
            continue
        reason = _non_finite(loaded.get(key) if isinstance(loaded, Mapping) else None)
        if reason:
            errors[name] = reason
            continue
        readable.append(item)
    _report(errors, len(items), len(readable), errors_file, on_bad_input, listed)
    return readable


def expand_inputs(
    folder: str | os.PathLike,
    errors_file: str | os.PathLike | None = None,
    on_bad_input: str = "error",
    **expand_options,
) -> list[dict]:
    """Inference items ``{"image": path, "slice": k}`` for every source directly under ``folder``.

    Each file (DICOM, NIfTI, PNG/JPEG/BMP/TIFF) and each sub-folder (a DICOM series folder) is expanded by
    :func:`~monai_rd.data.expand_source` (``expand_options``: ``slice_mode``, ``slice_axis``, ...; it decodes
    images and DICOM files). Every source is tried; empty, unsupported or unreadable ones are reported
    together as in :func:`check_readable` (one :class:`BadInputError`, or skipped with
    ``on_bad_input="skip"``, and ``errors_file``).
    """
    from monai_rd.data.indexers.folders import expand_source

    _require_on_bad_input(on_bad_input)
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
    _report(errors, len(sources), len(good), errors_file, on_bad_input)
    return items

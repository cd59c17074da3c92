"""Indexers for a team's own data: one folder per class, or a CSV, over images, DICOM and NIfTI; and the strict
``<root>/<class>/<image>`` listing the dataset indexers build on (:func:`list_class_folders`).

Every *source* (an image file, a DICOM file, a DICOM series folder, a NIfTI volume) becomes one or more datalist
items ``{"image": path, "label": int, "class_name": str, "slice": int, "group": str}``:

- PNG/JPEG/BMP/TIFF and single-frame DICOM files: one item, ``slice = -1`` (already 2D).
- multi-frame DICOM files and NIfTI volumes: one item per chosen slice (``slice_mode``), ``slice`` = the index
  along axis 0 of the reader's output (frames for DICOM; the ``slice_axis`` plane for NIfTI, see
  :class:`~monai_rd.data.NiftiReader`).
- DICOM series folders: one item per chosen slice *file* (sorted along the slice normal), ``slice = -1``, so
  training reads one file per item, not the whole series.
- ``slice_mode="volume"`` (3D students): one item per NIfTI volume, DICOM series folder or multi-frame DICOM
  file, ``slice = -1``, read whole by :class:`~monai_rd.data.MedicalImageReader`; a 2D image is refused.

Items of one source share a ``group`` (the source path relative to the dataset folder, or the CSV's group
column hashed, so that no patient identifier is copied into the datalist) and the seeded stratified split keeps
each group on one side. Pair the datalist with ``LoadImaged(reader=MedicalImageReader(nifti={"slice_axis": ...}))``
then ``ExtractSliced`` (see ``bundles/rd_clinical``).
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import os
from collections.abc import Sequence

import numpy as np

from monai_rd.data.datalist import assign_splits, check_split_options, finalize_datalist, stratified_split
from monai_rd.data.images import IMAGE_EXTENSIONS
from monai_rd.data.checks import verify_image, verify_volume
from monai_rd.data.indexers.layout import reject_unexpected, require_dir
from monai_rd.data.readers.dicom import DicomReadError, find_dicom_series, read_dicom, select_series, sort_series_files
from monai_rd.data.readers.medical import UnsupportedFileError, source_kind
from monai_rd.data.readers.nifti import read_nifti
from monai_rd.data.slices import SLICE_MODES, select_slices
from monai_rd.data.errors import BadInputError

__all__ = ["index_class_folders", "index_csv", "expand_source", "grouped_stratified_split", "list_class_folders"]


#: ``slice_mode`` that indexes whole volumes instead of slices
VOLUME_MODE = "volume"


def _slice_options(slice_mode: str, slice_axis, threshold, min_fraction) -> dict:
    if slice_mode not in SLICE_MODES + (VOLUME_MODE,):
        raise ValueError(f"slice_mode must be one of {SLICE_MODES + (VOLUME_MODE,)}, got {slice_mode!r}.")
    return {"mode": slice_mode, "axis": slice_axis, "threshold": threshold, "min_fraction": min_fraction}


def _series_folders(folder: str) -> list[str]:
    """Folders under ``folder`` (itself included) that directly hold files, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if any(not f.startswith(".") for f in files):
            found.append(root)
    return sorted(found)


def expand_source(
    path: str,
    slice_mode: str = "middle",
    slice_axis="axial",
    slice_threshold: float | None = None,
    slice_min_fraction: float = 0.01,
    multi_series: str = "error",
    verify: bool = True,
    nifti_volume_index: int | None = None,
) -> list[tuple[str, int]]:
    """The ``(image_path, slice)`` items of one source (see the module docstring).

    Args:
        path: an image file, a DICOM file, a NIfTI file, or a folder holding DICOM series (sub-folders allowed:
            every folder with files is read as a series folder).
        slice_mode, slice_axis, slice_threshold, slice_min_fraction: see :func:`~monai_rd.data.select_slices`
            and :class:`~monai_rd.data.NiftiReader`.
        multi_series: ``"error"`` refuses a folder holding several series (the error lists them); ``"all"``
            indexes every image series of it.
        verify: decode 2D images and DICOM files now so that an unreadable file fails at indexing, by name.
        nifti_volume_index: the volume of 4D NIfTI series to slice (pass the same to the reader); ``None``
            keeps all volumes as channels (a slice is foreground if any volume is).
    """
    if multi_series not in ("error", "all"):
        raise ValueError(f"multi_series must be 'error' or 'all', got {multi_series!r}.")
    kind = source_kind(path)
    opts = _slice_options(slice_mode, slice_axis, slice_threshold, slice_min_fraction)
    if opts["mode"] == VOLUME_MODE:
        return _volume_items(path, kind, multi_series, verify)
    pick = lambda volume: select_slices(volume, opts["mode"], opts["threshold"], opts["min_fraction"])  # noqa: E731
    if kind == "image":
        if verify:
            verify_image(path)
        return [(path, -1)]
    if kind == "nifti":
        volume, _ = read_nifti(path, slice_axis=slice_axis, volume_index=nifti_volume_index)
        return [(path, k) for k in _picked(pick, volume, path)]
    if os.path.isfile(path):  # one DICOM file
        array, meta = read_dicom(path)
        frames = int(meta.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            return [(path, k) for k in _picked(pick, array, path)]
        return [(path, -1)]
    items = []
    folders = _series_folders(path)
    if not folders:
        raise DicomReadError(f"{path!r} holds no file: expected DICOM series (one folder of .dcm files per series).")
    for folder in folders:
        series, non_image = find_dicom_series(folder)
        if multi_series == "error" or not series:
            chosen = [select_series(folder, series, non_image, None, None)]
        else:
            chosen = series
        for s in chosen:
            if s.multi_frame:
                for f in s.files:
                    array, _ = read_dicom(f)
                    items += [(f, k) for k in _picked(pick, array, f)]
                continue
            files, _ = sort_series_files(s.files)
            if opts["mode"] == "all" and not verify:
                items += [(f, -1) for f in files]
            elif opts["mode"] == "middle" and not verify:
                items.append((files[len(files) // 2], -1))
            else:
                volume = np.stack([read_dicom(f)[0] for f in files])
                items += [(files[k], -1) for k in _picked(pick, volume, folder)]
    return items


def _volume_items(path: str, kind: str, multi_series: str, verify: bool) -> list[tuple[str, int]]:
    """``slice_mode="volume"``: the whole volumes of one source, each read by the reader as ``[X, Y, Z]``."""
    if kind == "image":
        raise BadInputError(f"{path!r} is a 2D image: a 3D student (spatial_dims 3, slice_mode 'volume') needs NIfTI "
                         "volumes or DICOM series; train on 2D images with spatial_dims 2.")  # fmt: skip
    if kind == "nifti":
        if verify:  # the header says it all: no voxel data read at indexing
            verify_volume(path, what="a volume (3D, or 4D with nifti_volume_index)")
        return [(path, -1)]
    if os.path.isfile(path):  # one DICOM file: a volume only when it is multi-frame
        array, meta = read_dicom(path)
        if int(meta.get("NumberOfFrames", 1) or 1) < 2:
            raise BadInputError(f"{path!r} is a single-frame DICOM file (a 2D image): put the series' files in one "
                             "folder per series to index it as a volume.")  # fmt: skip
        return [(path, -1)]
    folders = _series_folders(path)
    if not folders:
        raise DicomReadError(f"{path!r} holds no file: expected DICOM series (one folder of .dcm files per series).")
    items = []
    for folder in folders:
        series, non_image = find_dicom_series(folder)
        if len(series) > 1 and multi_series == "all":
            raise BadInputError(f"{folder!r} holds {len(series)} series: as volumes, each series needs its own folder "
                             "(the reader reads one folder as one series).")  # fmt: skip
        select_series(folder, series, non_image, None, None)  # one image series, or an error that lists them
        items.append((folder, -1))
    return items


def _picked(pick, volume, path) -> list[int]:
    try:
        return pick(volume)
    except ValueError as e:
        raise BadInputError(f"{path!r}: {e}") from e


def grouped_stratified_split(
    labels: Sequence[int], groups: Sequence[str], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Item indices of a seeded split stratified by label in which all items of a group fall on one side.

    Raises:
        ValueError: a group holds items of several labels.
    """
    _check_one_label_per_group(labels, groups)
    return stratified_split(labels, val_fraction=val_fraction, seed=seed, groups=groups)


def _check_one_label_per_group(labels: Sequence[int], groups: Sequence[str]) -> None:
    group_label: dict[str, int] = {}
    for label, group in zip(labels, groups):
        if group_label.setdefault(group, label) != label:
            raise BadInputError(
                f"Group {group!r} holds items of several classes ({group_label[group]} and {label}); a group (one "
                "volume, series or patient) must have one label."
            )


def _source_and_split_options(options: dict) -> tuple[dict, dict]:
    """``options`` divided into the source options of :func:`expand_source` (``slice_mode``, ``verify`` ...) and
    the split options of :func:`~monai_rd.data.assign_splits`; a name that is neither raises ``TypeError``."""
    names = set(inspect.signature(expand_source).parameters) - {"path"}
    split_options = {k: v for k, v in options.items() if k not in names}
    check_split_options(split_options)
    return {k: v for k, v in options.items() if k in names}, split_options


def _finish(items: list[dict], classes: list[str], datalist_file, source: str, **split_options) -> dict:
    if not items:
        raise FileNotFoundError(f"No item found in {source!r}.")
    labels, groups = [i["label"] for i in items], [i["group"] for i in items]
    _check_one_label_per_group(labels, groups)
    datalist = assign_splits(items, labels, groups, **split_options)
    datalist["classes"] = list(classes)
    return finalize_datalist(datalist, datalist_file)


def index_class_folders(
    dataset_dir: str | os.PathLike,
    classes: Sequence[str] | None = None,
    *,
    datalist_file: str | os.PathLike | None = None,
    **options,
) -> dict:
    """Index ``<dataset_dir>/<class_name>/<source>`` into a MONAI datalist with a grouped stratified split.

    A ``<source>`` is an image (PNG/JPEG/BMP/TIFF), a DICOM file, a NIfTI volume, or a folder of DICOM series
    (e.g. ``<class>/<patient>/<series>/*.dcm``: everything under one ``<source>`` folder is one group). Hidden
    entries are ignored; anything else that is not one of those fails, by name.

    Args:
        classes: the class folder names in label order; default: the sorted folder names. Given, every folder
            must exist and no other folder may be there.
        datalist_file: also write the datalist there (atomically).
        options: the source options of :func:`expand_source` (``slice_mode``, ``slice_axis``, ``slice_threshold``,
            ``slice_min_fraction``, ``multi_series``, ``verify``, ``nifti_volume_index``) and the split options of
            :func:`~monai_rd.data.assign_splits` (the grouped, stratified training / validation / held-out test
            split: ``val_fraction``, ``seed``, ``split_protocol``, ``folds``, ``fold`` ...).

    Returns:
        ``{"training": [...], "validation": [...], "test": [...], "classes": [...], "split_protocol",
        "test_split": "held-out", "split_hash": str}``.
    """
    source_options, split_options = _source_and_split_options(options)
    root = os.path.abspath(os.fspath(dataset_dir))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset folder {root!r} does not exist; expected <dataset_dir>/<class_name>/<files>.")
    entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
    stray = [e for e in entries if not os.path.isdir(os.path.join(root, e))]
    if stray:
        raise BadInputError(
            f"{root!r} must hold only one folder per class; unexpected file(s) {stray[:5]}. Expected "
            "<dataset_dir>/<class_name>/<image, DICOM file, DICOM series folder or NIfTI volume>."
        )
    if classes is None:
        classes = entries
    else:
        classes = list(classes)
        missing = [c for c in classes if c not in entries]
        extra = [e for e in entries if e not in classes]
        if missing or extra:
            raise BadInputError(
                f"{root!r}: class folders {entries} do not match classes={classes} "
                f"(missing {missing}, unexpected {extra})."
            )
    if len(classes) < 2:
        raise BadInputError(f"{root!r} has {len(classes)} class folder(s) {list(classes)}: at least two are needed.")
    items = []
    for label, class_name in enumerate(classes):
        class_dir = os.path.join(root, class_name)
        sources = sorted(e for e in os.listdir(class_dir) if not e.startswith("."))
        if not sources:
            raise FileNotFoundError(f"Class folder {class_dir!r} is empty.")
        for name in sources:
            path = os.path.join(class_dir, name)
            group = os.path.relpath(path, root)
            for image, k in expand_source(path, **source_options):
                items.append({"image": image, "label": label, "class_name": class_name, "slice": k, "group": group})
    return _finish(items, classes, datalist_file, root, **split_options)


def _hash_group(value: str) -> str:
    return "g" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def index_csv(
    csv_file: str | os.PathLike,
    image_column: str = "image",
    label_column: str = "label",
    group_column: str | None = None,
    root: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    *,
    datalist_file: str | os.PathLike | None = None,
    **options,
) -> dict:
    """Index a CSV with one source per row (``image_column``: a path relative to ``root``, default the CSV's
    folder; ``label_column``: the class name) into a MONAI datalist with grouped stratified splits
    (training / validation / held-out test, or folds). ``classes``, ``datalist_file`` and the source and split
    ``options`` are those of :func:`index_class_folders`.

    ``group_column`` (e.g. a patient or lesion id) keeps rows of one group on one side of the split; its values
    are stored hashed, never as written. Without it every source is its own group.

    Raises:
        FileNotFoundError: the CSV or a listed source does not exist (row named).
        ValueError: missing columns, empty cells, a label not in ``classes``, fewer than two classes.
    """
    source_options, split_options = _source_and_split_options(options)
    csv_file = os.path.abspath(os.fspath(csv_file))
    if not os.path.isfile(csv_file):
        raise FileNotFoundError(f"CSV file {csv_file!r} does not exist.")
    base = os.path.abspath(os.fspath(root)) if root is not None else os.path.dirname(csv_file)
    with open(csv_file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        needed = [image_column, label_column] + ([group_column] if group_column else [])
        absent = [c for c in needed if c not in header]
        if absent:
            raise BadInputError(
                f"{csv_file!r}: columns {absent} not found; the header is {header}, expected at least {needed}."
            )
        rows = list(reader)
    if not rows:
        raise BadInputError(f"{csv_file!r} has a header but no row.")
    for n, row in enumerate(rows, start=2):
        for c in needed:
            if not (row.get(c) or "").strip():
                raise BadInputError(f"{csv_file!r} line {n}: empty {c!r}.")
    names = sorted({row[label_column].strip() for row in rows})
    if classes is None:
        classes = names
    else:
        classes = list(classes)
        unknown = [c for c in names if c not in classes]
        if unknown:
            raise BadInputError(f"{csv_file!r}: labels {unknown} are not in classes={classes}.")
    if len(classes) < 2:
        raise BadInputError(f"{csv_file!r}: {len(classes)} class(es) {list(classes)}; at least two are needed.")
    items = []
    for n, row in enumerate(rows, start=2):
        rel = row[image_column].strip()
        path = rel if os.path.isabs(rel) else os.path.join(base, rel)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{csv_file!r} line {n}: {path!r} does not exist.")
        class_name = row[label_column].strip()
        group = _hash_group(row[group_column].strip()) if group_column else os.path.relpath(path, base)
        try:
            sources = expand_source(path, **source_options)
        except (UnsupportedFileError, ValueError) as e:
            raise type(e)(f"{csv_file!r} line {n}: {e}") from e
        for image, k in sources:
            items.append(
                {
                    "image": os.path.abspath(image),
                    "label": classes.index(class_name),
                    "class_name": class_name,
                    "slice": k,
                    "group": group,
                }
            )
    return _finish(items, classes, datalist_file, csv_file, **split_options)


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
    reject_unexpected(entries, classes, f"{what} folder {root!r}", f"it must hold only the class folders {classes}")
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
                raise BadInputError(
                    f"Unexpected entry {path!r} in {what}: class folders hold only {list(exts)} images."
                )
            if verify_images:
                verify_image(path, what)
            items.append({"image": os.path.abspath(path), "label": label, "class_name": class_name})
            count += 1
        if not count:
            raise FileNotFoundError(f"Class folder {class_dir!r} of {what} holds no image.")
    return items, classes

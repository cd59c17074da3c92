"""ISIC 2018 task 3 / HAM10000 (dermoscopy, 7 diagnoses) indexers, split by lesion, official test sets used."""

from __future__ import annotations

import logging
import os

from monai_rd.data.datalist import assign_splits, check_split_options, finalize_datalist
from monai_rd.data.checks import verify_image
from monai_rd.data.indexers.layout import find_file, read_csv_table, require_dir
from monai_rd.data.errors import BadInputError

__all__ = ["ISIC2018_CLASSES", "HAM10000_DX", "index_isic2018", "index_ham10000"]

#: label order of the official ground-truth CSV columns
ISIC2018_CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
#: HAM10000 ``dx`` code -> ISIC 2018 class
HAM10000_DX = {"mel": "MEL", "nv": "NV", "bcc": "BCC", "akiec": "AKIEC", "bkl": "BKL", "df": "DF", "vasc": "VASC"}

_INPUT = "ISIC2018_Task3_Training_Input"
_GT_CSV = os.path.join("ISIC2018_Task3_Training_GroundTruth", "ISIC2018_Task3_Training_GroundTruth.csv")
_GROUPINGS = "ISIC2018_Task3_Training_LesionGroupings.csv"
_HAM_CSV = "HAM10000_metadata.csv"
_NOTICES = {"ATTRIBUTION.txt", "LICENSE.txt"}  # shipped inside the official zip files
#: the challenge's held-out sets: split name in the datalist -> the release's name (``ISIC2018_Task3_<name>_...``)
_OFFICIAL = {"validation": "Validation", "test": "Test"}
_TEST_IMAGE_DIRS = ("ISIC2018_Task3_Test_Input", "ISIC2018_Task3_Test_Images")  # challenge site, Dataverse

logger = logging.getLogger(__name__)


def _read_ground_truth(gt_file: str, input_dir: str, what: str, verify_images: bool) -> list[dict]:
    """Items ``{"image", "label", "class_name"}`` of a ground-truth CSV over the ``.jpg`` files of ``input_dir``.

    The CSV is the challenge's one-hot ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` table or, as the test ground
    truth published with HAM10000 on Harvard Dataverse, a metadata table with ``image_id`` and ``dx`` columns.
    Every listed image must exist and every image of ``input_dir`` must be listed.
    """
    if not os.path.isfile(gt_file):
        raise FileNotFoundError(f"{what} file {gt_file!r} does not exist.")
    with open(gt_file, encoding="utf-8-sig") as f:
        header = [h.strip() for h in f.readline().split(",")]
    one_hot = not {"image_id", "dx"} <= set(header)
    rows = read_csv_table(gt_file, ("image", *ISIC2018_CLASSES) if one_hot else ("image_id", "dx"), what)
    items, seen = [], set()
    for line, row in enumerate(rows, start=2):
        image = row["image"] if one_hot else row["image_id"]
        if image in seen:
            raise BadInputError(f"{gt_file!r}, line {line}: image {image!r} is listed twice.")
        seen.add(image)
        if one_hot:
            try:
                values = [float(row[c]) for c in ISIC2018_CLASSES]
            except ValueError as e:
                raise BadInputError(
                    f"{gt_file!r}, line {line}: non-numeric ground truth ({e}); expected 0.0/1.0."
                ) from e
            if sorted(values) != [0.0] * (len(values) - 1) + [1.0]:
                raise BadInputError(
                    f"{gt_file!r}, line {line}: {image!r} is not one-hot over {list(ISIC2018_CLASSES)} (got {values})."
                )
            label = values.index(1.0)
        else:
            dx = row["dx"].lower()
            if dx not in HAM10000_DX:
                raise BadInputError(
                    f"{gt_file!r}, line {line}: unknown dx {row['dx']!r}; expected one of {list(HAM10000_DX)}."
                )
            label = ISIC2018_CLASSES.index(HAM10000_DX[dx])
        path = os.path.join(input_dir, f"{image}.jpg")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Image {path!r} listed in {gt_file!r} (line {line}) does not exist.")
        if verify_images:
            verify_image(path, what)
        items.append({"image": os.path.abspath(path), "label": label, "class_name": ISIC2018_CLASSES[label]})
    for name in sorted(os.listdir(input_dir)):
        if name.startswith(".") or name in _NOTICES:
            continue
        stem, ext = os.path.splitext(name)
        if ext.lower() != ".jpg":
            raise BadInputError(
                f"Unexpected file {os.path.join(input_dir, name)!r}: the folder holds ISIC_*.jpg images."
            )
        if stem not in seen:
            raise BadInputError(f"Image {os.path.join(input_dir, name)!r} has no row in the ground truth {gt_file!r}.")
    return items


def _official_sets(root: str, verify_images: bool, notes: list[str], names=("validation", "test")) -> dict[str, list]:
    """The challenge's validation/test sets found in ``root`` (``{split: items}``); a half-present set is noted."""
    found = {}
    for split in names:
        release = _OFFICIAL[split]
        csv_name = f"ISIC2018_Task3_{release}_GroundTruth.csv"
        inputs = [
            os.path.join(root, d)
            for d in (f"ISIC2018_Task3_{release}_Input",) + (_TEST_IMAGE_DIRS[1:] if split == "test" else ())
            if os.path.isdir(os.path.join(root, d))
        ]
        gt_file = find_file(root, csv_name)
        if inputs and gt_file:
            found[split] = _read_ground_truth(
                gt_file, inputs[0], f"ISIC 2018 task 3 {release.lower()} set", verify_images
            )
        elif inputs or gt_file:
            have, lack = (inputs[0], csv_name) if inputs else (gt_file, f"ISIC2018_Task3_{release}_Input/")
            notes.append(f"official {release.lower()} set not used: {have!r} is present but {lack} is not")
            logger.warning("ISIC 2018: %s.", notes[-1])
    return found


def _split(
    items: list[dict],
    lesions: list[str],
    official_sets: dict[str, list],
    notes: list[str],
    datalist_file,
    **split_options,
) -> dict:
    """The datalist of the training images (grouped by lesion) plus the official validation/test sets."""
    official: list = [None] * len(items)
    groups = list(lesions)
    for split, extra in official_sets.items():
        items = items + extra
        official += [split] * len(extra)
        groups += [os.path.basename(i["image"]) for i in extra]  # no lesion ids are published for these
    datalist = assign_splits(items, [i["label"] for i in items], groups, official, **split_options)
    datalist["classes"] = list(ISIC2018_CLASSES)
    if notes:
        datalist["split_notes"] = notes
    return finalize_datalist(datalist, datalist_file)


def _lesion_table(dataset_dir: str, lesion_file: str | None) -> tuple[str, dict[str, str]] | None:
    """``(file, image -> lesion_id)`` from the ISIC lesion groupings CSV or ``HAM10000_metadata.csv``."""
    if lesion_file is None:
        lesion_file = find_file(dataset_dir, _GROUPINGS) or find_file(dataset_dir, _HAM_CSV)
        if lesion_file is None:
            return None
    if os.path.basename(lesion_file) == _HAM_CSV:
        rows = read_csv_table(lesion_file, ("lesion_id", "image_id"), "HAM10000 metadata")
        return lesion_file, {r["image_id"]: r["lesion_id"] for r in rows}
    rows = read_csv_table(lesion_file, ("image", "lesion_id"), "ISIC 2018 lesion groupings")
    return lesion_file, {r["image"]: r["lesion_id"] for r in rows}


def index_isic2018(
    dataset_dir: str | os.PathLike,
    *,
    datalist_file: str | os.PathLike | None = None,
    verify_images: bool = True,
    lesion_file: str | os.PathLike | None = None,
    group_by_lesion: bool = True,
    use_official_sets: bool = True,
    **split_options,
) -> dict:
    """Index the ISIC 2018 task 3 training release into a MONAI datalist, split by lesion.

    Expected layout (the official zip files unpacked side by side)::

        <dataset_dir>/ISIC2018_Task3_Training_Input/ISIC_0024306.jpg ...   (+ ATTRIBUTION.txt, LICENSE.txt)
        <dataset_dir>/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv
        <dataset_dir>/ISIC2018_Task3_Training_LesionGroupings.csv           (image,lesion_id,diagnosis_confirm_type)
        <dataset_dir>/ISIC2018_Task3_Validation_Input/*.jpg + ISIC2018_Task3_Validation_GroundTruth/*.csv (optional)
        <dataset_dir>/ISIC2018_Task3_Test_Input/*.jpg + ISIC2018_Task3_Test_GroundTruth/*.csv             (optional)

    The ground truth is one-hot over ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``; labels index
    :data:`ISIC2018_CLASSES` in that column order. Several images of one lesion exist, so the seeded
    stratified split keeps each lesion on one side; the lesion ids come from the lesion groupings CSV or,
    equivalently, from ``HAM10000_metadata.csv`` (the same 10015 images).

    The challenge's validation (193 images) and test (1512 images) sets, when both their images and their
    ground truth (``ISIC2018_Task3_{Validation,Test}_GroundTruth.csv``, same columns) are present, are the
    ``validation`` and ``test`` splits; a set with only one of the two is not used, and the datalist says so
    under ``split_notes``. Without them, a lesion-grouped hold-out is carved from the training images (see
    :func:`~monai_rd.data.assign_splits`).

    Args:
        dataset_dir: the folder holding the three entries above.
        datalist_file: if given, the datalist is also written there (atomically).
        verify_images: open every image so an unreadable file fails now, by name.
        lesion_file: the lesion table; found in ``dataset_dir`` (two levels deep) when ``None``.
        group_by_lesion: ``False`` splits by image (lesions may then leak across the split): only for
            data without lesion ids.
        use_official_sets: use the challenge's validation/test sets when present.
        split_options: ``val_fraction``, ``seed`` (the validation split, without the official validation set),
            ``split_protocol``, ``folds``, ``fold`` ... of :func:`~monai_rd.data.assign_splits`.

    Returns:
        ``{"training": [{"image", "label", "class_name"}...], "validation": [...], "test": [...], "classes",
        "split_protocol", "test_split", ["split_notes"], "split_hash"}``.

    Raises:
        FileNotFoundError: a missing folder, CSV or image, or no lesion table while ``group_by_lesion``.
        ValueError: a malformed CSV (missing columns, a row that is not one-hot, a repeated image), an image
            without ground truth or lesion id, an unexpected file, or an unreadable image.
    """
    check_split_options(split_options)
    root = os.fspath(dataset_dir)
    input_dir = require_dir(os.path.join(root, _INPUT), "ISIC 2018 task 3 training images")
    gt_file = os.path.join(root, _GT_CSV)
    items = _read_ground_truth(gt_file, input_dir, "ISIC 2018 task 3 ground truth", verify_images)
    lesions = [i["image"] for i in items]
    if group_by_lesion:
        table = _lesion_table(root, os.fspath(lesion_file) if lesion_file is not None else None)
        if table is None:
            raise FileNotFoundError(
                f"No lesion table in {root!r}: put {_GROUPINGS} (from the ISIC 2018 challenge site) or "
                f"{_HAM_CSV} there, pass lesion_file=..., or group_by_lesion=False to split by image."
            )
        table_file, lesion_of = table
        stems = [os.path.splitext(os.path.basename(i["image"]))[0] for i in items]
        missing = [s for s in stems if s not in lesion_of]
        if missing:
            raise BadInputError(f"{len(missing)} images have no lesion id in {table_file!r}, e.g. {missing[:3]}.")
        lesions = [lesion_of[s] for s in stems]
    notes: list[str] = []
    official = _official_sets(root, verify_images, notes) if use_official_sets else {}
    return _split(items, lesions, official, notes, datalist_file, **split_options)


def index_ham10000(
    dataset_dir: str | os.PathLike,
    *,
    datalist_file: str | os.PathLike | None = None,
    verify_images: bool = True,
    use_official_sets: bool = True,
    **split_options,
) -> dict:
    """Index the HAM10000 release (Harvard Dataverse / Kaggle) into a MONAI datalist, split by lesion.

    Expected layout::

        <dataset_dir>/HAM10000_metadata.csv     (lesion_id,image_id,dx,dx_type,age,sex,localization[,dataset])
        <dataset_dir>/HAM10000_images_part_1/ISIC_0024306.jpg ...
        <dataset_dir>/HAM10000_images_part_2/ISIC_0029306.jpg ...

    (image folders may also be spelt ``ham10000_images_part_*``; any folder whose name starts with
    ``HAM10000_images`` is searched). ``dx`` codes map to :data:`ISIC2018_CLASSES` (``nv`` -> ``NV`` ...), so
    labels match :func:`index_isic2018`. Age, sex and site are not copied into the datalist.

    The ISIC 2018 task 3 test set published with it (``ISIC2018_Task3_Test_GroundTruth.csv`` and the images
    unpacked as ``ISIC2018_Task3_Test_Images/`` or ``ISIC2018_Task3_Test_Input/``) is the ``test`` split when
    present; otherwise a lesion-grouped hold-out is carved.

    Takes, returns and raises as :func:`index_isic2018`.
    """
    check_split_options(split_options)
    root = os.fspath(dataset_dir)
    require_dir(root, "HAM10000")
    meta_file = os.path.join(root, _HAM_CSV)
    rows = read_csv_table(meta_file, ("lesion_id", "image_id", "dx"), "HAM10000 metadata")
    image_dirs = [
        os.path.join(root, d)
        for d in sorted(os.listdir(root))
        if d.lower().startswith("ham10000_images") and os.path.isdir(os.path.join(root, d))
    ]
    if not image_dirs:
        raise FileNotFoundError(f"No HAM10000_images_part_1/ or _part_2/ folder in {root!r}.")
    paths: dict[str, str] = {}
    for folder in image_dirs:
        for name in sorted(os.listdir(folder)):
            if name.startswith("."):
                continue
            stem, ext = os.path.splitext(name)
            full = os.path.join(folder, name)
            if ext.lower() != ".jpg":
                raise BadInputError(f"Unexpected file {full!r}: HAM10000 image folders hold ISIC_*.jpg images.")
            if stem in paths:
                raise BadInputError(f"Image {stem!r} is in two folders: {paths[stem]!r} and {full!r}.")
            paths[stem] = full
    items, lesions, seen = [], [], set()
    for line, row in enumerate(rows, start=2):
        image, dx = row["image_id"], row["dx"].lower()
        if image in seen:
            raise BadInputError(f"{meta_file!r}, line {line}: image {image!r} is listed twice.")
        seen.add(image)
        if dx not in HAM10000_DX:
            raise BadInputError(
                f"{meta_file!r}, line {line}: unknown dx {row['dx']!r}; expected one of {list(HAM10000_DX)}."
            )
        if not row["lesion_id"]:
            raise BadInputError(f"{meta_file!r}, line {line}: empty lesion_id for {image!r}.")
        if image not in paths:
            raise FileNotFoundError(f"Image {image}.jpg listed in {meta_file!r} (line {line}) is in no image folder.")
        if verify_images:
            verify_image(paths[image], "HAM10000")
        class_name = HAM10000_DX[dx]
        label = ISIC2018_CLASSES.index(class_name)
        items.append({"image": os.path.abspath(paths[image]), "label": label, "class_name": class_name})
        lesions.append(row["lesion_id"])
    extra = sorted(set(paths) - seen)
    if extra:
        raise BadInputError(f"{len(extra)} images have no row in {meta_file!r}, e.g. {[paths[e] for e in extra[:3]]}.")
    notes: list[str] = []
    official = _official_sets(root, verify_images, notes, names=("test",)) if use_official_sets else {}
    return _split(items, lesions, official, notes, datalist_file, **split_options)

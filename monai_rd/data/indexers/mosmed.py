"""MosMedData COVID19_1110 (Morozov et al. 2020) indexer: one chest CT volume per study, graded CT-0 .. CT-4.

The release unpacks to ``COVID19_1110/studies/CT-<k>/study_<NNNN>.nii.gz`` (1110 studies: CT-0 normal, CT-1 ..
CT-4 increasing share of lung involvement: <25%, 25-50%, 50-75%, >75%); ``masks/`` and ``dataset_registry.xlsx``
may sit next to ``studies/`` and are not read. There is no official split: a seeded stratified split gives
``training``/``validation``/``test`` (each study is its own group: one volume per patient study).
"""

from __future__ import annotations

import os
import re

from monai_rd.data.datalist import assign_splits, check_split_options, finalize_datalist
from monai_rd.data.checks import verify_volume
from monai_rd.data.indexers.layout import require_dir
from monai_rd.data.errors import BadInputError

__all__ = ["MOSMED_GRADES", "MOSMED_LABELINGS", "mosmed_classes", "index_mosmed"]

#: the five severity folders, in label order
MOSMED_GRADES = ("CT-0", "CT-1", "CT-2", "CT-3", "CT-4")
#: labeling -> (class names, grade -> class index)
MOSMED_LABELINGS: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "severity": (MOSMED_GRADES, {g: i for i, g in enumerate(MOSMED_GRADES)}),
    "binary": (("normal", "abnormal"), {g: int(g != "CT-0") for g in MOSMED_GRADES}),
}
_STUDY = re.compile(r"^study_\d+\.nii(\.gz)?$")


def mosmed_classes(labeling: str = "severity") -> list[str]:
    """Class names of ``labeling``: ``"severity"`` (CT-0 .. CT-4) or ``"binary"`` (normal = CT-0 vs abnormal)."""
    if labeling not in MOSMED_LABELINGS:
        raise ValueError(f"labeling must be one of {sorted(MOSMED_LABELINGS)}, got {labeling!r}.")
    return list(MOSMED_LABELINGS[labeling][0])


def _studies_dir(root: str) -> str:
    for candidate in (os.path.join(root, "studies"), os.path.join(root, "COVID19_1110", "studies")):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f"No 'studies' folder in {root!r} (nor in {os.path.join(root, 'COVID19_1110')!r}): expected MosMedData "
        "COVID19_1110 unpacked as <dataset_dir>/studies/CT-0 ... CT-4/study_NNNN.nii.gz."
    )


def index_mosmed(
    dataset_dir: str | os.PathLike,
    labeling: str = "severity",
    *,
    datalist_file: str | os.PathLike | None = None,
    verify_images: bool = True,
    **split_options,
) -> dict:
    """Index MosMedData COVID19_1110 into a MONAI datalist of whole volumes.

    Args:
        dataset_dir: the folder holding ``studies/`` (or ``COVID19_1110/studies/``).
        labeling: ``"severity"`` (5 classes CT-0 .. CT-4) or ``"binary"`` (normal = CT-0, abnormal = CT-1 .. CT-4).
        datalist_file: also write the datalist there (atomically).
        verify_images: read every NIfTI header now, so an unreadable or non-3D file fails at indexing, by name.
        split_options: the split options of :func:`~monai_rd.data.assign_splits` (stratified by grade, also for
            the binary labeling; each study is its own group).

    Returns:
        ``{"training": [{"image", "label", "class_name", "grade", "group"}...], "validation": [...],
        "test": [...], "classes": [...], "labeling", "split": "seeded", "split_protocol", "test_split",
        "split_hash"}``.

    Raises:
        FileNotFoundError: no ``studies`` folder, a missing grade folder, or an empty one.
        ValueError: a file that is not ``study_NNNN.nii[.gz]``, an unreadable or non-3D volume, a bad labeling.
    """
    check_split_options(split_options)
    classes = mosmed_classes(labeling)
    grade_to_label = MOSMED_LABELINGS[labeling][1]
    studies = _studies_dir(os.path.abspath(os.fspath(dataset_dir)))
    stray = sorted(e for e in os.listdir(studies) if not e.startswith(".") and e not in MOSMED_GRADES)
    if stray:
        raise BadInputError(
            f"Unexpected entries {stray[:5]} in {studies!r}: only the folders {list(MOSMED_GRADES)} belong."
        )
    items = []
    for grade in MOSMED_GRADES:
        folder = require_dir(os.path.join(studies, grade), f"MosMedData {grade}")
        names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        if not names:
            raise FileNotFoundError(f"{folder!r} is empty: expected study_NNNN.nii.gz volumes.")
        for name in names:
            path = os.path.join(folder, name)
            if not _STUDY.match(name) or not os.path.isfile(path):
                raise BadInputError(f"Unexpected entry {path!r}: MosMedData studies are files named study_NNNN.nii.gz.")
            if verify_images:
                verify_volume(path, dims=(3,), what="a MosMedData study (one 3D CT volume)")
            label = grade_to_label[grade]
            study = name.split(".")[0]
            items.append({"image": path, "label": label, "class_name": classes[label], "grade": grade, "group": study})
    datalist = assign_splits(items, [it["grade"] for it in items], [it["group"] for it in items], **split_options)
    datalist.update(classes=classes, labeling=labeling, split="seeded")
    return finalize_datalist(datalist, datalist_file)

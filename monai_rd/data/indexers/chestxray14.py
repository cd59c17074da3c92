"""NIH ChestX-ray14 (Wang et al. 2017) indexer: 14 findings, multi-hot labels, patient-level splits."""

from __future__ import annotations

import os
from collections import Counter

from monai_rd.data.datalist import assign_splits, check_split_options, finalize_datalist
from monai_rd.data.checks import verify_image
from monai_rd.data.indexers.layout import read_csv_table, require_dir
from monai_rd.data.errors import BadInputError

__all__ = ["CHESTXRAY14_FINDINGS", "index_chestxray14"]

#: the 14 findings in the usual order (labels are multi-hot vectors over this tuple)
CHESTXRAY14_FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)  # fmt: skip
NO_FINDING = "No Finding"
_ENTRY_FILES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
_LISTS = {"train_val": "train_val_list.txt", "test": "test_list.txt"}


def _read_list(path: str) -> list[str]:
    with open(path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def _find_images(root: str) -> dict[str, str]:
    """``name -> path`` of every PNG under the ``images*`` folders of ``root``."""
    folders = sorted(
        d for d in os.listdir(root) if d.lower().startswith("images") and os.path.isdir(os.path.join(root, d))
    )
    if not folders:
        raise FileNotFoundError(
            f"No images*/ folder in ChestX-ray14 folder {root!r}: expected images/ or "
            "images_001/images/ ... images_012/images/."
        )
    found: dict[str, str] = {}
    for folder in folders:
        for dirpath, dirs, names in os.walk(os.path.join(root, folder)):
            dirs.sort()
            for name in sorted(names):
                if name.startswith("."):
                    continue
                path = os.path.join(dirpath, name)
                if not name.lower().endswith(".png"):
                    raise BadInputError(f"Unexpected file {path!r} in ChestX-ray14: image folders hold PNG files.")
                if name in found:
                    raise BadInputError(f"Image {name!r} is present twice: {found[name]!r} and {path!r}.")
                found[name] = os.path.abspath(path)
    return found


def index_chestxray14(
    dataset_dir: str | os.PathLike,
    *,
    datalist_file: str | os.PathLike | None = None,
    use_official_lists: bool = True,
    require_all_images: bool = True,
    verify_images: bool = False,
    **split_options,
) -> dict:
    """Index NIH ChestX-ray14 into a multi-label MONAI datalist, split by patient.

    Expected layout (the NIH release, or Kaggle's ``nih-chest-xrays/data``)::

        <dataset_dir>/Data_Entry_2017.csv     (Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,...)
        <dataset_dir>/images/00000001_000.png ...      or images_001/images/ ... images_012/images/
        <dataset_dir>/train_val_list.txt, test_list.txt (optional: the official patient-disjoint lists)

    ``Finding Labels`` is ``|``-separated findings of :data:`CHESTXRAY14_FINDINGS` or ``No Finding``;
    each item's ``label`` is a multi-hot list of 14 ints (all zero for ``No Finding``). With the official
    lists, ``test`` is ``test_list.txt`` and ``train_val_list.txt`` is split into ``training`` and
    ``validation`` by patient; without them a patient-level hold-out ``test`` is carved first. Splits are
    seeded and stratified by each patient's most common rarest finding (see
    :func:`~monai_rd.data.assign_splits`). Patient ids, ages and sexes are never copied into the datalist.

    Args:
        dataset_dir: the folder holding the CSV and the image folders.
        datalist_file: if given, the datalist is also written there (atomically).
        use_official_lists: use ``train_val_list.txt``/``test_list.txt`` when both exist.
        split_options: the patient-level split (``val_fraction``, ``seed``, ``split_protocol`` ...), see
            :func:`~monai_rd.data.assign_splits`.
        require_all_images: every CSV row must have its image (the default); ``False`` indexes the images
            present (a partial download) and records how many rows were left out under ``missing_images``.
        verify_images: open every image so an unreadable file fails now, by name (off by default: the
            release has 112,120 images of about 400 kB).

    Returns:
        ``{"training": [{"image", "label": [14 ints], "findings": "A|B"}...], "validation": [...],
        "test": [...], "classes": [14 findings], "split": "official" | "patient", "split_protocol", "test_split",
        "missing_images": int, "split_hash"}``.

    Raises:
        FileNotFoundError: no CSV, no image folder, a missing image (with ``require_all_images``), or one
            official list without the other.
        ValueError: missing CSV columns, an unknown finding, ``No Finding`` mixed with findings, a repeated or
            non-PNG image, an image without a CSV row, or a list naming an unknown image.
    """
    check_split_options(split_options)
    root = require_dir(os.fspath(dataset_dir), "ChestX-ray14")
    entry_file = next((os.path.join(root, n) for n in _ENTRY_FILES if os.path.isfile(os.path.join(root, n))), None)
    if entry_file is None:
        raise FileNotFoundError(f"No {' or '.join(_ENTRY_FILES)} in ChestX-ray14 folder {root!r}.")
    rows = read_csv_table(entry_file, ("Image Index", "Finding Labels", "Patient ID"), "ChestX-ray14 Data_Entry")
    images = _find_images(root)
    entries: dict[str, dict] = {}
    patients: dict[str, str] = {}
    missing = 0
    for line, row in enumerate(rows, start=2):
        name, findings = row["Image Index"], row["Finding Labels"]
        if name in entries or name in patients:
            raise BadInputError(f"{entry_file!r}, line {line}: image {name!r} is listed twice.")
        if not row["Patient ID"]:
            raise BadInputError(f"{entry_file!r}, line {line}: empty Patient ID for {name!r}.")
        parts = [p.strip() for p in findings.split("|")]
        if parts == [NO_FINDING]:
            parts = []
        unknown = [p for p in parts if p not in CHESTXRAY14_FINDINGS]
        if unknown:
            raise BadInputError(
                f"{entry_file!r}, line {line}: unknown finding(s) {unknown} for {name!r}; expected "
                f"'|'-separated names of {list(CHESTXRAY14_FINDINGS)} or '{NO_FINDING}' alone."
            )
        if name not in images:
            if require_all_images:
                raise FileNotFoundError(
                    f"Image {name!r} of {entry_file!r} (line {line}) is in no images*/ folder of {root!r}; "
                    "pass require_all_images=False to index a partial download."
                )
            missing += 1
            patients[name] = ""
            continue
        if verify_images:
            verify_image(images[name], "ChestX-ray14")
        label = [int(f in parts) for f in CHESTXRAY14_FINDINGS]
        entries[name] = {"image": images[name], "label": label, "findings": "|".join(parts) or NO_FINDING}
        patients[name] = row["Patient ID"]
    extra = sorted(set(images) - set(patients))
    if extra:
        raise BadInputError(
            f"{len(extra)} images have no row in {entry_file!r}, e.g. {[images[e] for e in extra[:3]]}."
        )

    # stratify by the rarest finding of each image (``No Finding`` when none)
    frequency = Counter(f for e in entries.values() for f, v in zip(CHESTXRAY14_FINDINGS, e["label"]) if v)

    def stratum(entry: dict) -> str:
        present = [f for f, v in zip(CHESTXRAY14_FINDINGS, entry["label"]) if v]
        return min(present, key=lambda f: (frequency[f], f)) if present else NO_FINDING

    lists = {k: os.path.join(root, v) for k, v in _LISTS.items()}
    present = [k for k, p in lists.items() if os.path.isfile(p)]
    official: dict[str, str] = {}
    if use_official_lists and present:
        if len(present) != len(lists):
            raise FileNotFoundError(
                f"Only {[lists[k] for k in present]} exists; the official split needs both {list(_LISTS.values())} "
                "(or pass use_official_lists=False for a patient-level split)."
            )
        placed: dict[str, str] = {}
        for key, path in lists.items():
            for name in _read_list(path):
                if name not in patients:
                    raise BadInputError(f"{path!r} lists {name!r}, which has no row in {entry_file!r}.")
                if name in placed:
                    raise BadInputError(f"{name!r} is listed twice: in {placed[name]!r} and {path!r}.")
                placed[name] = path
                if key == "test":
                    official[name] = "test"
        unlisted = sorted(set(entries) - set(placed))
        if unlisted:
            raise BadInputError(f"{len(unlisted)} images are in neither official list, e.g. {unlisted[:3]}.")
    if not entries:
        raise FileNotFoundError(f"No ChestX-ray14 image of {entry_file!r} was found under {root!r}.")
    names = sorted(entries)
    items = [entries[n] for n in names]
    datalist = assign_splits(
        items,
        [stratum(i) for i in items],
        [patients[n] for n in names],
        [official.get(n) for n in names],
        **split_options,
    )
    datalist["split"] = "official" if official else "patient"
    datalist.update(classes=list(CHESTXRAY14_FINDINGS), missing_images=missing)
    return finalize_datalist(datalist, datalist_file)

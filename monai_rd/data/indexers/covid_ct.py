"""COVID-CT (Zhao et al. 2020, UCSD-AI4H) indexer: official split files when present, else a seeded hold-out."""

from __future__ import annotations

import os

from monai_rd.data.datalist import assign_splits, check_split_options, finalize_datalist
from monai_rd.data.checks import verify_image
from monai_rd.data.indexers.layout import require_dir
from monai_rd.data.errors import BadInputError

__all__ = ["COVID_CT_CLASSES", "index_covid_ct"]

#: explicit label order: 0 = NonCOVID, 1 = COVID (sources disagree, so it is fixed here)
COVID_CT_CLASSES = ("NonCOVID", "COVID")
_FOLDERS = {"NonCOVID": "CT_NonCOVID", "COVID": "CT_COVID"}
_SPLITS = {None: "train", "validation": "val", "test": "test"}  # assign_splits' official name -> file prefix
_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _image_root(root: str) -> str:
    nested = os.path.join(root, "Images-processed")
    return nested if os.path.isdir(os.path.join(nested, _FOLDERS["COVID"])) else root


def _split_file(split_dir: str, class_name: str, split: str) -> str:
    return os.path.join(split_dir, class_name, f"{split}CT_{class_name}.txt")


def _read_names(path: str) -> list[str]:
    with open(path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def index_covid_ct(
    dataset_dir: str | os.PathLike,
    *,
    datalist_file: str | os.PathLike | None = None,
    verify_images: bool = True,
    split_dir: str | os.PathLike | None = None,
    use_official_split: bool = True,
    **split_options,
) -> dict:
    """Index COVID-CT into a MONAI datalist with labels ``0 = NonCOVID``, ``1 = COVID``.

    Expected layout (the UCSD-AI4H/COVID-CT repository with the image zips unpacked)::

        <dataset_dir>/Images-processed/CT_COVID/<name>.png             (names hold '%', spaces, dots)
        <dataset_dir>/Images-processed/CT_NonCOVID/<name>.jpg|.png
        <dataset_dir>/Data-split/COVID/{train,val,test}CT_COVID.txt     (one file name per line)
        <dataset_dir>/Data-split/NonCOVID/{train,val,test}CT_NonCOVID.txt

    ``CT_COVID/`` and ``CT_NonCOVID/`` may also sit directly in ``dataset_dir``. When the six split files
    exist they define ``training``/``validation``/``test`` exactly (with ``folds``, train and val are pooled and
    folded; the test stays); otherwise a seeded stratified hold-out ``test`` and ``validation`` are carved (see
    :func:`~monai_rd.data.assign_splits`; ``split_protocol="paper_4to1"`` gives the paper's protocol).

    Args:
        dataset_dir: the repository folder (or the folder holding the two class folders).
        datalist_file: if given, the datalist is also written there (atomically).
        verify_images: open every image so an unreadable file fails now, by name.
        split_dir: the ``Data-split`` folder; default ``<dataset_dir>/Data-split``.
        use_official_split: ``False`` ignores split files and carves the splits.
        split_options: ``val_fraction``, ``seed`` (used without official split files), ``split_protocol``,
            ``folds``, ``fold`` ... of :func:`~monai_rd.data.assign_splits`.

    Returns:
        ``{"training": [{"image", "label", "class_name"}...], "validation": [...], "test": [...],
        "classes": ["NonCOVID", "COVID"], "split": "official" | "seeded", "split_protocol", "test_split",
        "split_hash"}``.

    Raises:
        FileNotFoundError: a missing class folder, an empty one, or only some of the six split files.
        ValueError: a non-image file, an unreadable image, a split file naming a missing image or an image twice,
            or an image listed in no split file.
    """
    check_split_options(split_options)
    root = os.fspath(dataset_dir)
    image_root = _image_root(require_dir(root, "COVID-CT"))
    files: dict[str, dict[str, str]] = {}
    for class_name, folder in _FOLDERS.items():
        class_dir = require_dir(os.path.join(image_root, folder), f"COVID-CT {folder}")
        names = {}
        for name in sorted(os.listdir(class_dir)):
            path = os.path.join(class_dir, name)
            if name.startswith("."):
                continue
            if not name.lower().endswith(_EXTENSIONS) or not os.path.isfile(path):
                raise BadInputError(f"Unexpected file {path!r} in COVID-CT: only PNG/JPG images belong in {folder}/.")
            if verify_images:
                verify_image(path, "COVID-CT")
            names[name] = os.path.abspath(path)
        if not names:
            raise FileNotFoundError(f"No image in {class_dir!r}: expected PNG/JPG CT slices.")
        files[class_name] = names

    def item(class_name: str, name: str) -> dict:
        label = COVID_CT_CLASSES.index(class_name)
        return {"image": files[class_name][name], "label": label, "class_name": class_name}

    split_dir = os.fspath(split_dir) if split_dir is not None else os.path.join(root, "Data-split")
    wanted = {(c, s): _split_file(split_dir, c, s) for c in COVID_CT_CLASSES for s in _SPLITS.values()}
    present = {k: p for k, p in wanted.items() if os.path.isfile(p)}
    if use_official_split and present:
        if len(present) != len(wanted):
            missing = sorted(p for k, p in wanted.items() if k not in present)
            raise FileNotFoundError(
                f"Incomplete COVID-CT split files in {split_dir!r}: missing {missing}. Restore them or pass "
                "use_official_split=False for a seeded 4:1 split."
            )
        items, official = [], []
        for class_name in COVID_CT_CLASSES:
            placed: dict[str, str] = {}
            for key, split in _SPLITS.items():
                path = wanted[(class_name, split)]
                for name in _read_names(path):
                    if name not in files[class_name]:
                        raise BadInputError(f"{path!r} lists {name!r}, which is not in {_FOLDERS[class_name]}/.")
                    if name in placed:
                        raise BadInputError(f"{name!r} is listed twice: in {placed[name]!r} and {path!r}.")
                    placed[name] = path
                    items.append(item(class_name, name))
                    official.append(key)
            unlisted = sorted(set(files[class_name]) - set(placed))
            if unlisted:
                raise BadInputError(
                    f"{len(unlisted)} images of {_FOLDERS[class_name]}/ are in no split file under {split_dir!r}, "
                    f"e.g. {unlisted[:3]}; fix the split files or pass use_official_split=False."
                )
        split = "official"
    else:
        items = [item(c, n) for c in COVID_CT_CLASSES for n in files[c]]
        official, split = None, "seeded"
    datalist = assign_splits(items, [i["label"] for i in items], None, official, **split_options)
    datalist.update(classes=list(COVID_CT_CLASSES), split=split)
    return finalize_datalist(datalist, datalist_file)

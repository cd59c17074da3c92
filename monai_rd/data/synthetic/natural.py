"""Synthetic datasets written in the exact on-disk layout of the real ones (for demos and tests)."""

from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

from monai_rd.data.indexers.btc import BTC_CLASSES
from monai_rd.data.indexers.busi import BUSI_CLASSES
from monai_rd.data.indexers.chestxray14 import CHESTXRAY14_FINDINGS
from monai_rd.data.indexers.covid_ct import COVID_CT_CLASSES
from monai_rd.data.indexers.isic import HAM10000_DX, ISIC2018_CLASSES

__all__ = [
    "make_busi_like",
    "make_isic2018_like",
    "make_ham10000_like",
    "make_covid_ct_like",
    "make_btc_like",
    "make_chestxray14_like",
]


def _lesion_mask(rng: np.random.Generator, size: int, irregular: bool) -> np.ndarray:
    """A filled blob: a smooth ellipse (benign-like) or a spiculated star shape (malignant-like)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(0.35, 0.65, 2) * size
    ry, rx = rng.uniform(0.12, 0.22, 2) * size
    angle = np.arctan2(yy - cy, xx - cx)
    radius = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    if irregular:
        spikes = rng.integers(5, 9)
        boundary = 1.0 + 0.35 * np.sin(spikes * angle + rng.uniform(0, 2 * np.pi))
    else:
        boundary = np.ones_like(angle)
    return radius <= boundary


def make_busi_like(
    folder: str | os.PathLike,
    n_per_class: int = 12,
    size: int = 64,
    seed: int = 0,
    grey_fraction: float = 0.25,
    duplicates: bool = True,
) -> str:
    """Write a small BUSI-layout dataset: ``<folder>/Dataset_BUSI_with_GT/<class>/<class> (N).png``.

    Each image has a ``<class> (N)_mask.png``; every fifth benign/malignant image also has a second
    ``_mask_1.png``, as in the real release. Images are speckled ultrasound-like textures: ``normal`` has no
    lesion, ``benign`` a smooth dark oval, ``malignant`` a spiculated dark blob, so the task is learnable.
    Most images are RGB with three equal channels (like BUSI); ``grey_fraction`` of them are saved as
    8-bit greyscale.

    With ``duplicates`` (and ``n_per_class >= 4``), like the real release, each class holds two planted
    duplicates: ``<class> (n_per_class).png`` is a byte-identical copy of ``<class> (1).png`` and
    ``<class> (n_per_class - 1).png`` a near duplicate of ``<class> (2).png`` (resized by 1.25, brightened
    by 10 grey levels, re-saved), with their masks copied. The image count is unchanged.

    Returns:
        the ``Dataset_BUSI_with_GT`` folder.
    """
    rng = np.random.default_rng(seed)
    root = os.path.join(os.fspath(folder), "Dataset_BUSI_with_GT")
    for class_name in BUSI_CLASSES:
        os.makedirs(os.path.join(root, class_name), exist_ok=True)
        for n in range(1, n_per_class + 1):
            speckle = rng.rayleigh(0.25, (size, size))
            depth = np.linspace(1.0, 0.6, size)[:, None]  # ultrasound attenuation with depth
            image = np.clip(speckle * depth, 0, 1)
            mask = np.zeros((size, size), dtype=bool)
            if class_name != "normal":
                mask = _lesion_mask(rng, size, irregular=class_name == "malignant")
                image[mask] *= 0.25
            pixels = (image * 255).astype(np.uint8)
            stem = os.path.join(root, class_name, f"{class_name} ({n})")
            if rng.uniform() < grey_fraction:
                Image.fromarray(pixels, mode="L").save(f"{stem}.png")
            else:
                Image.fromarray(np.stack([pixels] * 3, axis=-1), mode="RGB").save(f"{stem}.png")
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(f"{stem}_mask.png")
            if class_name != "normal" and n % 5 == 0:
                Image.fromarray(np.zeros_like(pixels), mode="L").save(f"{stem}_mask_1.png")
        if duplicates and n_per_class >= 4:
            _plant_duplicates(os.path.join(root, class_name), class_name, n_per_class)
    return root


def _plant_duplicates(class_dir: str, class_name: str, n: int) -> None:
    """Overwrite images ``n`` and ``n - 1`` with an exact and a near duplicate of images 1 and 2."""

    def stem(k: int) -> str:
        return os.path.join(class_dir, f"{class_name} ({k})")

    shutil.copyfile(f"{stem(1)}.png", f"{stem(n)}.png")
    shutil.copyfile(f"{stem(1)}_mask.png", f"{stem(n)}_mask.png")
    with Image.open(f"{stem(2)}.png") as im:
        w, h = im.size
        bigger = np.asarray(im.resize((w * 5 // 4, h * 5 // 4), Image.Resampling.BILINEAR), dtype=np.int16)
        Image.fromarray(np.clip(bigger + 10, 0, 255).astype(np.uint8), mode=im.mode).save(f"{stem(n - 1)}.png")
    with Image.open(f"{stem(2)}_mask.png") as m:
        m.resize((w * 5 // 4, h * 5 // 4), Image.Resampling.NEAREST).save(f"{stem(n - 1)}_mask.png")


def _ellipse(size: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Boolean ``[size, size]`` mask of an axis-aligned ellipse (centre and radii in pixels)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


# -- dermoscopy (ISIC 2018 task 3 / HAM10000) ---------------------------------------------------------------

#: one lesion colour (RGB in [0, 1]) and radius (fraction of the image) per ISIC 2018 class
_DERMO_LOOK = {
    "MEL": ((0.15, 0.08, 0.10), 0.34),
    "NV": ((0.45, 0.28, 0.15), 0.22),
    "BCC": ((0.85, 0.55, 0.60), 0.28),
    "AKIEC": ((0.75, 0.35, 0.25), 0.18),
    "BKL": ((0.55, 0.50, 0.35), 0.30),
    "DF": ((0.60, 0.40, 0.50), 0.14),
    "VASC": ((0.80, 0.10, 0.20), 0.24),
}


def _dermoscopy(rng: np.random.Generator, size: int, class_name: str, centre: np.ndarray) -> np.ndarray:
    """A skin-coloured RGB image ``[size, size, 3]`` in [0, 1] with a class-coloured, class-sized oval lesion."""
    skin = np.array([0.88, 0.70, 0.62]) + rng.normal(0, 0.02, 3)
    image = np.broadcast_to(skin, (size, size, 3)).copy() + rng.normal(0, 0.03, (size, size, 3))
    colour, radius = _DERMO_LOOK[class_name]
    r = radius * size * rng.uniform(0.9, 1.1)
    mask = _ellipse(size, centre[0] * size, centre[1] * size, r, r * rng.uniform(0.8, 1.2))
    image[mask] = np.array(colour) + rng.normal(0, 0.04, (int(mask.sum()), 3))
    return image


#: first image number of each set of the ISIC 2018 task 3 release (ISIC_0024306 ... ISIC_0036059)
_ISIC_FIRST_ID = {"Training": 24306, "Validation": 34321, "Test": 34524}


def _dermoscopy_set(rng: np.random.Generator, n_per_class: int, size: int, image_no: int = 24306, lesion_no: int = 0):
    """``[(image_id, lesion_id, class_name, uint8 RGB)]``: every other image is a second view of a lesion."""
    records = []
    for class_name in ISIC2018_CLASSES:
        centre = None
        for n in range(n_per_class):
            if n % 2 == 0:  # a new lesion; the next image is another view of it
                lesion_no += 1
                centre = rng.uniform(0.4, 0.6, 2)
            view_centre = centre + rng.normal(0, 0.03, 2)
            pixels = _to_uint8(_dermoscopy(rng, size, class_name, view_centre))
            records.append((f"ISIC_{image_no:07d}", f"HAM_{lesion_no:07d}", class_name, pixels))
            image_no += 1
    order = rng.permutation(len(records))  # the release lists images by id, not by class
    return [records[i] for i in order]


def _write_isic_set(root: str, release: str, records: list) -> list:
    """``ISIC2018_Task3_<release>_Input/*.jpg`` and ``..._GroundTruth/..._GroundTruth.csv`` (one-hot); returns rows."""
    input_dir = os.path.join(root, f"ISIC2018_Task3_{release}_Input")
    gt_dir = os.path.join(root, f"ISIC2018_Task3_{release}_GroundTruth")
    os.makedirs(input_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    gt = ["image," + ",".join(ISIC2018_CLASSES)]
    for image_id, _, class_name, pixels in records:
        Image.fromarray(pixels, mode="RGB").save(os.path.join(input_dir, f"{image_id}.jpg"), quality=95)
        gt.append(image_id + "," + ",".join("1.0" if c == class_name else "0.0" for c in ISIC2018_CLASSES))
    for d in (input_dir, gt_dir):
        for notice in ("ATTRIBUTION.txt", "LICENSE.txt"):
            with open(os.path.join(d, notice), "w") as f:
                f.write("Synthetic images written by monai_rd for tests; no real patient data.\n")
    with open(os.path.join(gt_dir, f"ISIC2018_Task3_{release}_GroundTruth.csv"), "w", newline="") as f:
        f.write("\n".join(gt) + "\n")
    return records


def _held_out_count(n_per_class: int, given: int | None, share: int) -> int:
    return max(1, n_per_class // share) if given is None else given


def make_isic2018_like(
    folder: str | os.PathLike,
    n_per_class: int = 6,
    size: int = 64,
    seed: int = 0,
    n_val_per_class: int | None = None,
    n_test_per_class: int | None = None,
) -> str:
    """Write a small ISIC 2018 task 3 release in its exact layout; returns ``folder``.

    ``ISIC2018_Task3_Training_Input/ISIC_00xxxxx.jpg`` (+ ATTRIBUTION.txt, LICENSE.txt),
    ``ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv`` (one-hot ``0.0``/``1.0``
    over ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``) and ``ISIC2018_Task3_Training_LesionGroupings.csv``
    (``image,lesion_id,diagnosis_confirm_type``). Lesions are ovals whose colour and size depend on the class;
    images come in pairs of views of one lesion, so a split must group them.

    The challenge's held-out sets are written the same way, as ``ISIC2018_Task3_Validation_{Input,GroundTruth}``
    (``n_val_per_class`` images per class, default ``max(1, n_per_class // 4)``, ids from ISIC_0034321) and
    ``ISIC2018_Task3_Test_{Input,GroundTruth}`` (``n_test_per_class``, default ``max(1, n_per_class // 3)``, ids
    from ISIC_0034524), each of new lesions; ``0`` leaves a set out.
    """
    rng = np.random.default_rng(seed)
    root = os.fspath(folder)
    records = sorted(_dermoscopy_set(rng, n_per_class, size), key=lambda r: r[0])
    _write_isic_set(root, "Training", records)
    groups = ["image,lesion_id,diagnosis_confirm_type"]
    groups += [f"{image_id},{lesion_id},histopathology" for image_id, lesion_id, _, _ in records]
    with open(os.path.join(root, "ISIC2018_Task3_Training_LesionGroupings.csv"), "w", newline="") as f:
        f.write("\n".join(groups) + "\n")
    lesion_no = len({r[1] for r in records})
    for release, n, share in (("Validation", n_val_per_class, 4), ("Test", n_test_per_class, 3)):
        n = _held_out_count(n_per_class, n, share)
        if n:
            held = sorted(_dermoscopy_set(rng, n, size, _ISIC_FIRST_ID[release], lesion_no), key=lambda r: r[0])
            lesion_no += len({r[1] for r in held})
            _write_isic_set(root, release, held)
    return root


def make_ham10000_like(
    folder: str | os.PathLike,
    n_per_class: int = 6,
    size: int = 64,
    seed: int = 0,
    n_test_per_class: int | None = None,
) -> str:
    """Write a small HAM10000 release in its exact layout; returns ``folder``.

    ``HAM10000_metadata.csv`` (``lesion_id,image_id,dx,dx_type,age,sex,localization``) and the images split
    over ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``, as on Harvard Dataverse / Kaggle, plus the
    ISIC 2018 task 3 test set published alongside on Dataverse: ``ISIC2018_Task3_Test_Images/*.jpg`` and
    ``ISIC2018_Task3_Test_GroundTruth.csv`` in the metadata's columns (``n_test_per_class`` images per class,
    default ``max(1, n_per_class // 3)``; ``0`` leaves it out).
    """
    rng = np.random.default_rng(seed)
    root = os.fspath(folder)
    dx_of = {v: k for k, v in HAM10000_DX.items()}
    records = _dermoscopy_set(rng, n_per_class, size)
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for k, (image_id, lesion_id, class_name, pixels) in enumerate(sorted(records, key=lambda r: r[0])):
        part = os.path.join(root, f"HAM10000_images_part_{1 if k < len(records) // 2 else 2}")
        os.makedirs(part, exist_ok=True)
        Image.fromarray(pixels, mode="RGB").save(os.path.join(part, f"{image_id}.jpg"), quality=95)
    for image_id, lesion_id, class_name, _ in sorted(records, key=lambda r: r[1]):  # the CSV is sorted by lesion
        age = f"{float(rng.integers(4, 18) * 5):.1f}"
        rows.append(f"{lesion_id},{image_id},{dx_of[class_name]},histo,{age},{rng.choice(['male', 'female'])},back")
    with open(os.path.join(root, "HAM10000_metadata.csv"), "w", newline="") as f:
        f.write("\n".join(rows) + "\n")
    n_test = _held_out_count(n_per_class, n_test_per_class, 3)
    if n_test:
        first_lesion = len({r[1] for r in records})
        test_dir = os.path.join(root, "ISIC2018_Task3_Test_Images")
        os.makedirs(test_dir, exist_ok=True)
        test_rows = [rows[0] + ",dataset"]
        for image_id, lesion_id, class_name, pixels in sorted(
            _dermoscopy_set(rng, n_test, size, _ISIC_FIRST_ID["Test"], first_lesion), key=lambda r: r[0]
        ):
            Image.fromarray(pixels, mode="RGB").save(os.path.join(test_dir, f"{image_id}.jpg"), quality=95)
            test_rows.append(f"{lesion_id},{image_id},{dx_of[class_name]},histo,50.0,female,back,vidir_modern")
        with open(os.path.join(root, "ISIC2018_Task3_Test_GroundTruth.csv"), "w", newline="") as f:
            f.write("\n".join(test_rows) + "\n")
    return root


# -- COVID-CT -------------------------------------------------------------------------------------------------


def _ct_slice(rng: np.random.Generator, size: int, covid: bool) -> np.ndarray:
    """A grey axial chest CT-like slice ``[size, size]`` in [0, 1]; COVID slices carry bright ground-glass patches."""
    image = np.zeros((size, size))
    image[_ellipse(size, size / 2, size / 2, 0.40 * size, 0.47 * size)] = 0.6
    lungs = np.zeros((size, size), dtype=bool)
    for side in (0.30, 0.70):
        lungs |= _ellipse(size, 0.5 * size, side * size, 0.28 * size, 0.15 * size)
    image[lungs] = 0.08
    if covid:
        for _ in range(rng.integers(2, 5)):
            side = rng.choice([0.30, 0.70])
            patch = _ellipse(
                size, rng.uniform(0.35, 0.65) * size, (side + rng.uniform(-0.05, 0.05)) * size, 0.08 * size, 0.06 * size
            )
            image[patch & lungs] = 0.45
    return np.clip(image + rng.normal(0, 0.03, (size, size)), 0, 1)


def _covid_names(n: int) -> list[str]:
    """File names in the style of CT_COVID/ (preprint ids, '%' page suffixes, spaces)."""
    styles = (
        "2020.02.{:02d}.20021584-p6-52%{}.png",
        "PIIS01406736203036{:02d}%{}.png",
        "2019-novel-Coronavirus-severe-adult-respiratory-dist_2020_International-Jour-p3-{:02d}%{}.png",
        "Recurrence of positive SARS-CoV-2 RNA in COVID-19 A case report-p1-{:02d}%{}.png",
    )
    return [styles[k % len(styles)].format(k, k % 3) for k in range(n)]


def _noncovid_names(n: int) -> list[str]:
    """File names in the style of CT_NonCOVID/ (``0.jpg``, ``1%0.jpg``, PNGs with spaces)."""
    styles = ("{}.jpg", "{}%0.jpg", "{}%1.png", "IMG {}.png")
    return [styles[k % len(styles)].format(k) for k in range(n)]


def make_covid_ct_like(
    folder: str | os.PathLike, n_per_class: int = 10, size: int = 64, seed: int = 0, split_files: bool = True
) -> str:
    """Write a small COVID-CT repository in its exact layout; returns ``folder``.

    ``Images-processed/CT_COVID/*.png`` and ``Images-processed/CT_NonCOVID/*.jpg|.png`` (names with ``%``
    and spaces, some RGB, some grey) and, with ``split_files``, ``Data-split/COVID/{train,val,test}CT_COVID.txt``
    and ``Data-split/NonCOVID/{train,val,test}CT_NonCOVID.txt`` (60/20/20, Windows line endings as in the
    repository).
    """
    rng = np.random.default_rng(seed)
    root = os.fspath(folder)
    for class_name in COVID_CT_CLASSES:
        covid = class_name == "COVID"
        class_dir = os.path.join(root, "Images-processed", f"CT_{class_name}")
        os.makedirs(class_dir, exist_ok=True)
        names = (_covid_names if covid else _noncovid_names)(n_per_class)
        for k, name in enumerate(names):
            pixels = _to_uint8(_ct_slice(rng, size, covid))
            im = Image.fromarray(pixels, mode="L") if k % 2 else Image.fromarray(np.stack([pixels] * 3, -1), "RGB")
            im.save(os.path.join(class_dir, name), **({"quality": 95} if name.endswith(".jpg") else {}))
        if split_files:
            split_dir = os.path.join(root, "Data-split", class_name)
            os.makedirs(split_dir, exist_ok=True)
            order = [names[i] for i in rng.permutation(len(names))]
            n_train, n_val = int(round(0.6 * len(names))), int(round(0.2 * len(names)))
            parts = {
                "train": order[:n_train],
                "val": order[n_train : n_train + n_val],
                "test": order[n_train + n_val :],
            }
            for split, part in parts.items():
                with open(os.path.join(split_dir, f"{split}CT_{class_name}.txt"), "w", newline="") as f:
                    f.write("".join(name + "\r\n" for name in part))
    return root


# -- Brain tumour MRI (BTC) -----------------------------------------------------------------------------------


def _brain_mri(rng: np.random.Generator, size: int, class_name: str) -> np.ndarray:
    """A grey axial brain MRI-like slice ``[size, size]`` in [0, 1] with a class-typical bright mass."""
    image = np.zeros((size, size))
    brain = _ellipse(size, 0.5 * size, 0.5 * size, 0.42 * size, 0.34 * size)
    image[brain] = 0.35 + 0.1 * rng.random(int(brain.sum()))
    if class_name == "glioma_tumor":  # irregular mass inside one hemisphere
        side = rng.choice([0.35, 0.65])
        hemisphere = _ellipse(size, 0.45 * size, side * size, 0.2 * size, 0.14 * size)
        mass = _lesion_mask(rng, size, irregular=True) & hemisphere
        image[mass] = 0.9
    elif class_name == "meningioma_tumor":  # round mass at the brain's edge
        angle = rng.uniform(0, 2 * np.pi)
        image[
            _ellipse(
                size, (0.5 + 0.36 * np.sin(angle)) * size, (0.5 + 0.28 * np.cos(angle)) * size, 0.11 * size, 0.11 * size
            )
            & brain
        ] = 0.95
    elif class_name == "pituitary_tumor":  # small mass in the sella, centre-bottom
        image[_ellipse(size, 0.62 * size, 0.5 * size, 0.07 * size, 0.07 * size)] = 1.0
    return np.clip(image + rng.normal(0, 0.02, (size, size)), 0, 1)


_BTC_TRAIN_NAMES = {
    "glioma_tumor": "gg ({})",
    "meningioma_tumor": "m ({})",
    "no_tumor": "{}",
    "pituitary_tumor": "p ({})",
}


def make_btc_like(
    folder: str | os.PathLike, n_train_per_class: int = 8, n_test_per_class: int = 3, size: int = 64, seed: int = 0
) -> str:
    """Write a small Brain Tumor Classification (MRI) set in its exact layout; returns ``folder``.

    ``Training/<class>/`` (``gg (N).jpg``, ``m (N).jpg``, ``N.jpg``, ``p (N).jpg``) and
    ``Testing/<class>/image(N).jpg`` for the classes ``glioma_tumor, meningioma_tumor, no_tumor,
    pituitary_tumor``; RGB JPEGs with three equal channels, as in the Kaggle release.
    """
    rng = np.random.default_rng(seed)
    root = os.fspath(folder)
    for split, n, pattern in (("Training", n_train_per_class, None), ("Testing", n_test_per_class, "image({})")):
        for class_name in BTC_CLASSES:
            class_dir = os.path.join(root, split, class_name)
            os.makedirs(class_dir, exist_ok=True)
            for k in range(1, n + 1):
                pixels = _to_uint8(_brain_mri(rng, size, class_name))
                name = (pattern or _BTC_TRAIN_NAMES[class_name]).format(k) + ".jpg"
                Image.fromarray(np.stack([pixels] * 3, -1), "RGB").save(os.path.join(class_dir, name), quality=95)
    return root


# -- ChestX-ray14 ---------------------------------------------------------------------------------------------

CHESTXRAY14_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)


def _chest_xray(rng: np.random.Generator, size: int, findings: list[str]) -> np.ndarray:
    """A grey frontal chest X-ray-like image ``[size, size]``; finding ``k`` adds a bright mark at grid cell ``k``."""
    image = np.full((size, size), 0.75)
    for side in (0.3, 0.7):
        image[_ellipse(size, 0.5 * size, side * size, 0.35 * size, 0.16 * size)] = 0.25
    cell = size / 4
    for finding in findings:
        k = CHESTXRAY14_FINDINGS.index(finding)
        r, c = divmod(k, 4)
        y0, x0 = int(r * cell + cell / 4), int(c * cell + cell / 4)
        image[y0 : y0 + int(cell / 2), x0 : x0 + int(cell / 2)] = 1.0
    return np.clip(image + rng.normal(0, 0.03, (size, size)), 0, 1)


def make_chestxray14_like(
    folder: str | os.PathLike,
    n_patients: int = 16,
    max_images_per_patient: int = 3,
    size: int = 64,
    seed: int = 0,
    official_lists: bool = True,
) -> str:
    """Write a small NIH ChestX-ray14 release in the Kaggle layout; returns ``folder``.

    ``Data_Entry_2017.csv`` with the release's exact header (``Image Index,Finding Labels,Follow-up #,Patient
    ID,...`` with its unquoted ``OriginalImage[Width,Height]`` and trailing comma), images
    ``images_001/images/<patient>_<follow-up>.png`` and ``images_002/images/...`` (8-bit grey, a few RGBA as in
    the release) and, with ``official_lists``, ``train_val_list.txt``/``test_list.txt`` splitting patients 3:1.
    A third of the images are ``No Finding``; the others have one or two findings, each drawn as a bright
    square in its own cell of a 4 x 4 grid.
    """
    rng = np.random.default_rng(seed)
    root = os.fspath(folder)
    rows, by_patient = [CHESTXRAY14_HEADER], {}
    count = 0
    for patient in range(1, n_patients + 1):
        by_patient[patient] = []
        for follow_up in range(int(rng.integers(1, max_images_per_patient + 1))):
            name = f"{patient:08d}_{follow_up:03d}.png"
            n_findings = int(rng.choice([0, 1, 2], p=[1 / 3, 1 / 3, 1 / 3]))
            findings = sorted(rng.choice(CHESTXRAY14_FINDINGS, n_findings, replace=False).tolist())
            pixels = _to_uint8(_chest_xray(rng, size, findings))
            folder_name = f"images_{1 + count % 2:03d}"
            image_dir = os.path.join(root, folder_name, "images")
            os.makedirs(image_dir, exist_ok=True)
            if count % 7 == 3:  # the release holds a few RGBA PNGs
                im = Image.fromarray(np.dstack([pixels] * 3 + [np.full_like(pixels, 255)]), "RGBA")
            else:
                im = Image.fromarray(pixels, "L")
            im.save(os.path.join(image_dir, name))
            labels = "|".join(findings) if findings else "No Finding"
            age, sex = int(rng.integers(20, 80)), rng.choice(["M", "F"])
            rows.append(f"{name},{labels},{follow_up},{patient},{age},{sex},PA,2500,2048,0.143,0.143,")
            by_patient[patient].append(name)
            count += 1
    with open(os.path.join(root, "Data_Entry_2017.csv"), "w", newline="") as f:
        f.write("\n".join(rows) + "\n")
    if official_lists:
        patients = [int(p) for p in rng.permutation(list(by_patient))]
        n_test = max(1, n_patients // 4)
        test = sorted(n for p in patients[:n_test] for n in by_patient[p])
        train_val = sorted(n for p in patients[n_test:] for n in by_patient[p])
        for name, names in (("train_val_list.txt", train_val), ("test_list.txt", test)):
            with open(os.path.join(root, name), "w") as f:
                f.write("\n".join(names) + "\n")
    return root

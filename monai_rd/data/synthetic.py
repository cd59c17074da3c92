"""Synthetic datasets written in the exact on-disk layout of the real ones (for demos and tests)."""

from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

from .busi import BUSI_CLASSES

__all__ = ["make_busi_like"]


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

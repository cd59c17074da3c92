"""The grey *target* modality of the synthetic modality-gap tasks: ultrasound-like images with a lesion to classify.

Rayleigh speckle, depth attenuation and a low-contrast lesion that is absent (``normal``), a smooth oval
(``benign``) or a spiculated blob (``malignant``). The lesion's intensity factor is drawn from ``contrast``: closer
to 1 is a subtler lesion and a harder task. Used by ``benchmarks/modality_gap.py``, ``benchmarks/rd_dynamics.py`` and
the task families of :mod:`monai_rd.experiments.task_families`, against a teacher pretrained on the colour shapes of
:mod:`monai_rd.data.synthetic.source`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["TARGET_CLASSES", "make_target_images"]

TARGET_CLASSES = ("normal", "benign", "malignant")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def make_target_images(
    n_per_class: int, size: int, seed: int, contrast: tuple[float, float] = (0.35, 0.6)
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` images of each of :data:`TARGET_CLASSES`, shuffled: images ``[N, 3, size, size]`` float32 in
    ``[0, 1]`` (the grey image in three channels) and labels ``[N]`` int64 (indices into :data:`TARGET_CLASSES`).

    ``contrast``: range of the lesion's intensity factor (closer to 1 = subtler lesions, a harder task); ``seed``
    fixes every image.
    """
    rng = np.random.default_rng(seed)
    n = n_per_class * len(TARGET_CLASSES)
    images, labels = np.empty((n, 3, size, size), np.float32), np.empty(n, np.int64)
    yy, xx = _grid(size)
    for i in range(n):
        label = i % len(TARGET_CLASSES)
        image = rng.rayleigh(0.25, (size, size)) * np.linspace(1.0, 0.6, size)[:, None]
        if label > 0:
            r = rng.uniform(0.15, 0.28) * size
            cy, cx = rng.uniform(r, size - r, 2)
            aspect = rng.uniform(0.6, 1.0)
            rho = np.hypot((yy - cy) / aspect, xx - cx)
            theta = np.arctan2(yy - cy, xx - cx)
            if label == 2:  # spiculated: a radius modulated by several random harmonics
                k = rng.integers(5, 9)
                boundary = r * (0.75 + 0.25 * np.cos(k * theta + rng.uniform(0, 2 * np.pi)))
            else:
                boundary = np.full_like(rho, r)
            image = np.where(rho <= boundary, image * rng.uniform(*contrast), image)  # low, varying contrast
        image = np.clip(image, 0, 1)
        images[i], labels[i] = np.repeat(image[None], 3, 0), label
    order = rng.permutation(n)
    return torch.from_numpy(images[order]), torch.from_numpy(labels[order])

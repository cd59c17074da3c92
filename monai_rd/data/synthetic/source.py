"""A synthetic *source* modality for pretraining a demo teacher: coloured shapes on smooth colour gradients.

It is deliberately unlike the grey, speckled medical targets (ultrasound-like BUSI images ...): natural-image-like
colour, no speckle, six shape classes. A teacher pretrained here knows shapes and edges, not ultrasound, so RD
has a real modality gap to bridge (as with a foundation model pretrained elsewhere).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SOURCE_CLASSES", "source_shape_mask", "make_source_images"]

SOURCE_CLASSES = ("disc", "square", "triangle", "star", "ring", "cross")


def source_shape_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``[size, size]`` mask of one source shape (``SOURCE_CLASSES``) at a random position, scale, angle."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = rng.uniform(0.18, 0.32) * size
    cy, cx = rng.uniform(r, size - r, 2)
    angle = rng.uniform(0, 2 * np.pi)
    dy, dx = yy - cy, xx - cx
    u, v = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    if kind == "disc":
        return rho <= r
    if kind == "square":
        return np.maximum(abs(u), abs(v)) <= r * 0.8
    if kind == "triangle":
        return rho * np.cos(((theta + np.pi / 3) % (2 * np.pi / 3)) - np.pi / 3) <= r * 0.5
    if kind == "star":
        return rho <= r * (0.55 + 0.45 * np.cos(5 * theta))
    if kind == "ring":
        return (rho <= r) & (rho >= r * 0.55)
    if kind == "cross":
        return ((abs(u) <= r * 0.3) | (abs(v) <= r * 0.3)) & (np.maximum(abs(u), abs(v)) <= r)
    raise KeyError(f"Unknown source shape {kind!r}; known: {', '.join(SOURCE_CLASSES)}.")


def make_source_images(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` source images, class ``i % 6``: a coloured shape on a smooth colour gradient, light colour noise.

    Returns:
        images ``[n, 3, size, size]`` float32 in ``[0, 1]`` (RGB) and labels ``[n]`` int64.
    """
    rng = np.random.default_rng(seed)
    images, labels = np.empty((n, 3, size, size), np.float32), np.empty(n, np.int64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(n):
        label = i % len(SOURCE_CLASSES)
        c0, c1 = rng.uniform(0, 1, (2, 3))
        fg = np.clip(1.0 - (c0 + c1) / 2 + rng.normal(0, 0.1, 3), 0, 1)  # contrasting foreground colour
        t = (np.cos(rng.uniform(0, np.pi)) * yy + np.sin(rng.uniform(0, np.pi)) * xx) / (2 * size) + 0.5
        background = c0[:, None, None] * (1 - t) + c1[:, None, None] * t
        mask = source_shape_mask(SOURCE_CLASSES[label], size, rng)
        image = np.where(mask, fg[:, None, None], background) + rng.normal(0, 0.03, (3, size, size))
        images[i], labels[i] = np.clip(image, 0, 1), label
    return torch.from_numpy(images), torch.from_numpy(labels)

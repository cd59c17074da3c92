"""Dermoscopy: Shades of Gray colour constancy and DullRazor-style hair removal."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import cv2
import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from monai_rd.transforms._utils import like, source_of, to_numpy64

__all__ = ["ShadesOfGray", "ShadesOfGrayd", "HairRemoval", "HairRemovald"]


class ShadesOfGray(Transform):
    """Shades of Gray colour constancy (Finlayson & Trezzi, "Shades of Gray and Colour Constancy", CIC 2004).

    The illuminant of channel ``c`` is the Minkowski ``p``-mean of its values, ``e_c = (mean(I_c ** p)) ** (1/p)``;
    ``e`` is scaled to unit Euclidean norm and each channel divided by ``sqrt(3) * e_c`` (so a grey illuminant,
    ``e = (1, 1, 1) / sqrt(3)``, leaves the image unchanged). ``p = 1`` is Grey World, ``p = inf`` is max-RGB;
    ``p = 6`` is the value Barata et al. (IEEE JBHI 2015) found best for dermoscopy and the usual ISIC choice.

    Args:
        power: Minkowski norm ``p`` (``>= 1``, ``math.inf`` allowed).
        clip_max: the output is clipped to ``[0, clip_max]`` (``1.0`` for images in ``[0, 1]``); ``None`` to not clip.

    Input float ``[3, H, W]`` with non-negative values; output float32 ``[3, H, W]``.
    """

    def __init__(self, power: float = 6.0, clip_max: float | None = 1.0) -> None:
        if not power >= 1:
            raise ValueError(f"power must be >= 1 (or inf), got {power}.")
        self.power = float(power)
        self.clip_max = clip_max

    def illuminant(self, img: torch.Tensor) -> torch.Tensor:
        """Unit-norm illuminant estimate ``e``, shape ``[3]`` (float64)."""
        if img.ndim < 2 or img.shape[0] != 3:
            raise ValueError(
                f"ShadesOfGray expects an RGB image [3, H, W]{source_of(img)}, got shape {tuple(img.shape)}."
            )
        x = torch.as_tensor(img, dtype=torch.float64).reshape(3, -1)
        if (x < 0).any():
            raise ValueError(f"ShadesOfGray expects non-negative intensities{source_of(img)}.")
        if math.isinf(self.power):
            e = x.amax(dim=1)
        else:
            scale = x.amax().clamp_min(1e-12)  # scaled for numerical range; the norm is scale-equivariant
            e = ((x / scale) ** self.power).mean(dim=1) ** (1.0 / self.power) * scale
        norm = torch.linalg.vector_norm(e)
        if norm <= 0:
            raise ValueError(f"ShadesOfGray: the image is black{source_of(img)}; no illuminant can be estimated.")
        return e / norm

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        e = self.illuminant(img)
        gains = 1.0 / (math.sqrt(3.0) * e.clamp_min(1e-12))
        out = torch.as_tensor(img, dtype=torch.float64) * gains.view(3, *([1] * (img.ndim - 1)))
        if self.clip_max is not None:
            out = out.clamp(0.0, float(self.clip_max))
        return like(out.float(), img)


class HairRemoval(Transform):
    """DullRazor-style hair removal (Lee et al., Comput. Biol. Med. 1997, as commonly implemented with OpenCV).

    1. grey = channel mean; black-hat ``closing(grey) - grey`` with an elliptic (disk) structuring element of side
       ``kernel_size`` (dark structures narrower than the element light up, crossings included; the common
       cross-shaped element misses the pixels where two hairs cross);
    2. hair mask = black-hat ``> threshold``, dilated by ``dilate`` pixels to cover the hair borders;
    3. each channel is inpainted under the mask (OpenCV Telea, radius ``inpaint_radius``, on a 16-bit quantisation
       of the channel's range); pixels outside the mask are returned unchanged.

    Args:
        kernel_size: side of the disk structuring element (odd), larger than the widest hair in pixels.
        threshold: black-hat threshold in the image's intensity units (``0.04`` ~ 10/255 for ``[0, 1]`` images).
        dilate: mask dilation in pixels (0 for none).
        inpaint_radius: OpenCV inpainting radius.

    Input float ``[C, H, W]`` (C = 1 or 3) in ``[0, 1]``; output float32 ``[C, H, W]``.
    """

    def __init__(self, kernel_size: int = 11, threshold: float = 0.04, dilate: int = 1, inpaint_radius: float = 3.0):
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}.")
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
        self.threshold = float(threshold)
        self.dilate = int(dilate)
        self.inpaint_radius = float(inpaint_radius)

    def _check(self, img: torch.Tensor) -> None:
        if img.ndim != 3 or img.shape[0] not in (1, 3):
            raise ValueError(f"HairRemoval expects [C, H, W] with C = 1 or 3{source_of(img)}, got {tuple(img.shape)}.")

    def hair_mask(self, img: torch.Tensor) -> np.ndarray:
        """Boolean hair mask ``[H, W]``."""
        self._check(img)
        grey = to_numpy64(img).mean(axis=0).astype(np.float32)
        blackhat = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, self.kernel)
        mask = (blackhat > self.threshold).astype(np.uint8)
        if self.dilate > 0:
            mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.dilate + 1,) * 2))
        return mask.astype(bool)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        mask = self.hair_mask(img)
        x = to_numpy64(img)
        if mask.any():
            # OpenCV's Telea inpainting is reliable on 8/16-bit input only (float32 overshoots), so inpaint a 16-bit
            # quantisation of each channel's range and take only the pixels under the mask from it
            mask8 = mask.astype(np.uint8)
            filled = []
            for c in x:
                low, high = c.min(), c.max()
                span = high - low if high > low else 1.0
                q = np.rint((c - low) / span * 65535.0).astype(np.uint16)
                q = cv2.inpaint(q, mask8, self.inpaint_radius, cv2.INPAINT_TELEA)
                filled.append(np.where(mask, q / 65535.0 * span + low, c))
            x = np.stack(filled)
        return like(x, img)


class ShadesOfGrayd(MapTransform):
    """Dictionary version of :class:`ShadesOfGray`."""

    def __init__(
        self, keys: KeysCollection, power: float = 6.0, clip_max: float | None = 1.0, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ShadesOfGray(power, clip_max)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class HairRemovald(MapTransform):
    """Dictionary version of :class:`HairRemoval`."""

    def __init__(
        self,
        keys: KeysCollection,
        kernel_size: int = 11,
        threshold: float = 0.04,
        dilate: int = 1,
        inpaint_radius: float = 3.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = HairRemoval(kernel_size, threshold, dilate, inpaint_radius)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d

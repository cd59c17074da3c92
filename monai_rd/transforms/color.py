"""Channel handling: any grey, grey+alpha, RGB or RGBA image to 3-channel RGB."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

__all__ = ["EnsureRGB", "EnsureRGBd"]


class EnsureRGB(Transform):
    """Channel-first image ``[C, H, W]`` -> ``[3, H, W]``.

    ``C = 1`` (grey) is repeated, ``C = 2`` (grey + alpha) keeps grey repeated, ``C = 3`` is kept and
    ``C = 4`` (RGBA) drops alpha. Other channel counts raise, naming the source file when known.
    """

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        c = img.shape[0]
        if c in (1, 2):
            return img[:1].repeat(3, *([1] * (img.ndim - 1)))
        if c in (3, 4):
            return img[:3]
        source = img.meta.get("filename_or_obj", "") if isinstance(img, MetaTensor) else ""
        where = f" in {source!r}" if source else ""
        raise ValueError(
            f"Cannot make an RGB image from {c} channels{where} (shape {tuple(img.shape)}); expected 1-4 channels "
            "with the channel first (use EnsureChannelFirst before this transform)."
        )


class EnsureRGBd(MapTransform):
    """Dictionary version of :class:`EnsureRGB`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = EnsureRGB()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d

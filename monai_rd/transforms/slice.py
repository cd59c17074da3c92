"""Extracting one 2D slice of a loaded volume (array and dictionary forms)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

__all__ = ["ExtractSlice", "ExtractSliced"]


class ExtractSlice(Transform):
    """``[C, S, H, W]`` -> ``[C, H, W]``: the slice ``index`` along the first spatial axis.

    That is the slice axis of :class:`~monai_rd.data.DicomReader` (frames / sorted slices) and of
    :class:`~monai_rd.data.NiftiReader` with ``slice_axis`` set. ``index = -1`` marks an image that is already
    2D: a ``[C, H, W]`` input is returned unchanged; a 3D input with index -1 raises, as does a 2D input with
    an index >= 0 (the datalist and the data disagree). The affine of a :class:`MetaTensor` is updated so that
    the 2D indices keep their world coordinates.
    """

    def __call__(self, img: torch.Tensor, index: int) -> torch.Tensor:
        index = int(index)
        source = img.meta.get("filename_or_obj", "") if isinstance(img, MetaTensor) else ""
        if img.ndim == 3:
            if index != -1:
                raise ValueError(f"{source!r}: slice {index} asked of a 2D image of shape {tuple(img.shape)}.")
            return img
        if img.ndim != 4:
            raise ValueError(f"{source!r}: expected [C, H, W] or [C, S, H, W], got shape {tuple(img.shape)}.")
        if not 0 <= index < img.shape[1]:
            raise ValueError(
                f"{source!r}: slice {index} out of range for {img.shape[1]} slices (shape {tuple(img.shape)})."
            )
        out = img[:, index]
        if isinstance(img, MetaTensor):
            affine = img.affine.clone()
            # 3D index (index, h, w) -> world; the 2D affine keeps the h, w columns and folds the offset
            new = torch.eye(4, dtype=affine.dtype)
            new[:3, 0] = affine[:3, 1]
            new[:3, 1] = affine[:3, 2]
            new[:3, 2] = affine[:3, 0]
            new[:3, 3] = affine[:3, 3] + index * affine[:3, 0]
            out = MetaTensor(out.as_tensor(), meta=dict(img.meta))
            out.affine = new
        return out


class ExtractSliced(MapTransform):
    """Dictionary version of :class:`ExtractSlice`; the index is read from ``data[slice_key]``."""

    def __init__(self, keys: KeysCollection, slice_key: str = "slice", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slice_key = slice_key
        self.extractor = ExtractSlice()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.slice_key not in d:
            raise KeyError(f"ExtractSliced: the item has no {self.slice_key!r} key (keys: {sorted(map(str, d))}).")
        for key in self.key_iterator(d):
            d[key] = self.extractor(d[key], d[self.slice_key])
        return d

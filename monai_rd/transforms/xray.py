"""Projection X-ray: MONOCHROME1 inversion and CLAHE (contrast-limited adaptive histogram equalisation)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_rd.transforms._utils import like, source_of, to_numpy64

__all__ = [
    "ARRAY_PHOTOMETRIC_KEY",
    "PHOTOMETRIC_KEYS",
    "photometric_interpretation",
    "InvertMonochrome1",
    "InvertMonochrome1d",
    "CLAHE",
    "CLAHEd",
]

#: metadata key holding the photometric interpretation *of the array* (set by monai_rd's DICOM reader after it
#: inverts MONOCHROME1, and by :class:`InvertMonochrome1`); it wins over the file's own header value.
ARRAY_PHOTOMETRIC_KEY = "rd_photometric_interpretation"
#: metadata keys looked up, in this order, for the photometric interpretation: the array's own, then the DICOM
#: (0028,0004) header value as readers store it (keyword, ITK ``0028|0004``, pydicom JSON ``00280004``).
PHOTOMETRIC_KEYS = (
    ARRAY_PHOTOMETRIC_KEY,
    "PhotometricInterpretation",
    "photometric_interpretation",
    "0028|0004",
    "00280004",
    "(0028,0004)",
)


def photometric_interpretation(meta: Mapping[str, Any]) -> str | None:
    """The Photometric Interpretation recorded in ``meta`` (``"MONOCHROME1"``...), or ``None`` if absent."""
    for key in PHOTOMETRIC_KEYS:
        if key in meta:
            value = meta[key]
            if isinstance(value, Mapping):  # pydicom JSON style {"vr": "CS", "Value": ["MONOCHROME1"]}
                value = (value.get("Value") or [None])[0]
            if isinstance(value, (list, tuple)):
                value = value[0] if value else None
            return None if value is None else str(value).strip().upper()
    return None


class InvertMonochrome1(Transform):
    """Invert MONOCHROME1 images (high value = dark) so that, as in MONOCHROME2, high value = bright.

    ``out = low + high - x`` where ``(low, high)`` is ``value_range`` when given (e.g. ``(0, 2**BitsStored - 1)``),
    else the image's own minimum and maximum (so the value range is kept).

    Whether to invert: ``invert=True``/``False`` forces it; ``invert=None`` inverts only when the image is a
    MetaTensor whose metadata says ``MONOCHROME1`` (first of :data:`PHOTOMETRIC_KEYS` present: an image that
    monai_rd's DICOM reader already inverted carries ``rd_photometric_interpretation="MONOCHROME2"`` and is left
    alone). After inverting, ``rd_photometric_interpretation`` is set to ``MONOCHROME2`` (the header value is kept)
    so that applying the transform twice inverts once.

    Input ``[C, *spatial]``; output float32 ``[C, *spatial]``.
    """

    def __init__(self, invert: bool | None = None, value_range: Sequence[float] | None = None) -> None:
        self.invert = invert
        if value_range is not None and len(value_range) != 2:
            raise ValueError(f"value_range must be (low, high), got {value_range!r}.")
        self.value_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))

    def __call__(self, img: torch.Tensor, invert: bool | None = None) -> torch.Tensor:
        invert = self.invert if invert is None else invert
        meta = img.meta if isinstance(img, MetaTensor) else {}
        if invert is None:
            invert = photometric_interpretation(meta) == "MONOCHROME1"
        x = torch.as_tensor(img, dtype=torch.float32)
        if not invert:
            return like(x, img)
        low, high = self.value_range if self.value_range is not None else (float(x.min()), float(x.max()))
        out = like(low + high - x, img)
        if isinstance(out, MetaTensor):
            out.meta[ARRAY_PHOTOMETRIC_KEY] = "MONOCHROME2"
        return out


def _clahe_plane(q: np.ndarray, nbins: int, tiles: tuple[int, int], clip_limit: float) -> np.ndarray:
    """CLAHE of one plane of bin indices ``q`` (int, ``[H, W]``); returns float64 values in ``[0, nbins - 1]``.

    The algorithm of OpenCV's ``createCLAHE`` (imgproc/src/clahe.cpp): bottom/right reflect-101 padding to a
    multiple of the tile grid, integer clip limit ``max(int(clip_limit * tile_area / nbins), 1)``, clipped counts
    redistributed uniformly with the remainder spread at a fixed step, LUT = cumulative histogram * (nbins-1) /
    tile_area, bilinear interpolation between tile centres (edge tiles clamped). The LUT is not rounded.
    """
    h, w = q.shape
    ty, tx = tiles
    if h % ty == 0 and w % tx == 0:
        padded = q
    else:  # OpenCV pads both axes by (tiles - size % tiles), even an axis that divides evenly
        padded = np.pad(q, ((0, ty - h % ty), (0, tx - w % tx)), mode="reflect")
    th, tw = padded.shape[0] // ty, padded.shape[1] // tx
    area = th * tw
    blocks = padded[: ty * th, : tx * tw].reshape(ty, th, tx, tw).transpose(0, 2, 1, 3).reshape(ty * tx, area)
    offsets = np.arange(ty * tx)[:, None] * nbins
    hist = np.bincount((blocks + offsets).ravel(), minlength=ty * tx * nbins).reshape(ty * tx, nbins)
    if clip_limit > 0:
        limit = max(int(clip_limit * area / nbins), 1)
        clipped = np.maximum(hist - limit, 0).sum(axis=1)
        hist = np.minimum(hist, limit)
        batch = clipped // nbins
        hist += batch[:, None]
        residual = clipped - batch * nbins
        for t in np.nonzero(residual)[0]:
            step = max(nbins // int(residual[t]), 1)
            hist[t, np.arange(0, nbins, step)[: residual[t]]] += 1
    lut = (np.cumsum(hist, axis=1) * ((nbins - 1) / area)).reshape(ty, tx, nbins)

    def axis_weights(n: int, tile: int, count: int):
        f = np.arange(n) / tile - 0.5
        i1 = np.floor(f).astype(int)
        a = f - i1
        return np.maximum(i1, 0), np.minimum(i1 + 1, count - 1), a

    y1, y2, ya = axis_weights(h, th, ty)
    x1, x2, xa = axis_weights(w, tw, tx)
    y1, y2, ya = y1[:, None], y2[:, None], ya[:, None]
    top = lut[y1, x1, q] * (1 - xa) + lut[y1, x2, q] * xa
    bottom = lut[y2, x1, q] * (1 - xa) + lut[y2, x2, q] * xa
    return top * (1 - ya) + bottom * ya


class CLAHE(Transform):
    """Contrast-limited adaptive histogram equalisation (Zuiderveld, Graphics Gems IV, 1994), OpenCV semantics.

    Each channel of an image in ``[0, 1]`` is quantised to ``nbins`` grey levels, equalised tile by tile with the
    histogram clipped at ``clip_limit`` times the mean bin count, and interpolated bilinearly between tiles; the
    result agrees with ``cv2.createCLAHE(clip_limit, (tiles[1], tiles[0])).apply`` on 8-bit images to one grey
    level (``nbins=256``; OpenCV rounds its LUT, this keeps it in float).

    Args:
        clip_limit: contrast limit relative to the mean bin count (OpenCV ``clipLimit``); ``0`` for plain AHE.
        tiles: number of tiles along ``(H, W)``.
        nbins: grey levels (256 for 8-bit detail, up to 65536 for 16-bit X-ray).

    Input float ``[C, H, W]`` in ``[0, 1]`` (values outside are clipped); output float32 ``[C, H, W]`` in ``[0, 1]``.
    """

    def __init__(self, clip_limit: float = 2.0, tiles: Sequence[int] = (8, 8), nbins: int = 256) -> None:
        if clip_limit < 0:
            raise ValueError(f"clip_limit must be >= 0, got {clip_limit}.")
        if len(tiles) != 2 or min(tiles) < 1:
            raise ValueError(f"tiles must be two positive ints (along H, W), got {tiles!r}.")
        if not 2 <= nbins <= 65536:
            raise ValueError(f"nbins must be in [2, 65536], got {nbins}.")
        self.clip_limit = float(clip_limit)
        self.tiles = (int(tiles[0]), int(tiles[1]))
        self.nbins = int(nbins)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 3:
            raise ValueError(f"CLAHE expects a 2D image [C, H, W]{source_of(img)}, got shape {tuple(img.shape)}.")
        if img.shape[1] < self.tiles[0] or img.shape[2] < self.tiles[1]:
            raise ValueError(
                f"CLAHE: image {tuple(img.shape)}{source_of(img)} is smaller than the {self.tiles} tile grid."
            )
        x = np.clip(to_numpy64(img), 0.0, 1.0)
        q = np.rint(x * (self.nbins - 1)).astype(np.int64)
        out = np.stack([_clahe_plane(c, self.nbins, self.tiles, self.clip_limit) for c in q]) / (self.nbins - 1)
        return like(out, img)


class InvertMonochrome1d(MapTransform):
    """Dictionary version of :class:`InvertMonochrome1`."""

    def __init__(
        self,
        keys: KeysCollection,
        invert: bool | None = None,
        value_range: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = InvertMonochrome1(invert, value_range)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class CLAHEd(MapTransform):
    """Dictionary version of :class:`CLAHE`."""

    def __init__(
        self,
        keys: KeysCollection,
        clip_limit: float = 2.0,
        tiles: Sequence[int] = (8, 8),
        nbins: int = 256,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = CLAHE(clip_limit, tiles, nbins)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d

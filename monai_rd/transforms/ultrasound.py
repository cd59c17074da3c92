"""Ultrasound: crop to the imaging fan (dropping borders, burnt-in text and calipers) and speckle augmentation."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import cv2
import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform, SpatialCrop, Transform
from scipy import ndimage
from scipy.spatial import ConvexHull

from monai_rd.transforms._utils import like, source_of, to_numpy64

__all__ = ["fan_mask", "UltrasoundFanCrop", "UltrasoundFanCropd", "RandSpeckleNoise", "RandSpeckleNoised"]


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return xx**2 + yy**2 <= radius**2


def _convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """The pixels ``[H, W]`` whose centres lie in the convex hull of the centres of ``mask``'s pixels."""
    points = np.argwhere(mask).astype(np.float64)
    if len(points) < 3 or np.linalg.matrix_rank(points - points[0]) < 2:
        return mask
    vertices = points[ConvexHull(points).vertices].astype(np.int32)[:, ::-1]  # (x, y) integer pixel centres
    hull = np.zeros(mask.shape, dtype=np.uint8)
    cv2.fillConvexPoly(hull, np.ascontiguousarray(vertices), 1)
    return hull.astype(bool) | mask


def fan_mask(
    img: torch.Tensor | np.ndarray, threshold: float = 0.04, opening_radius: int = 2, convex: bool = True
) -> np.ndarray:
    """Boolean mask ``[H, W]`` of the imaging region of an ultrasound frame ``[C, H, W]``.

    Pixels whose channel mean exceeds ``threshold * max`` are foreground; an opening with a disk of
    ``opening_radius`` cuts thin structures (text strokes, caliper lines, scale bars) off the fan; the largest
    connected component (8-connectivity) is kept and its holes (anechoic regions such as cysts) filled. With
    ``convex`` the mask is the component's convex hull: linear and curvilinear fans are convex (up to the small
    lens under a curvilinear probe's inner arc), and the hull keeps dark regions that reach the fan's edge, such as
    posterior acoustic shadowing, which hole filling alone would cut off.
    Raises ``ValueError`` when there is no foreground.
    """
    grey = to_numpy64(img).mean(axis=0)
    peak = grey.max()
    foreground = grey > threshold * peak if peak > 0 else np.zeros_like(grey, dtype=bool)
    if opening_radius > 0:
        # erosion counts pixels beyond the frame as foreground, so a fan reaching the frame's edge keeps its corners
        disk = _disk(opening_radius)
        foreground = ndimage.binary_erosion(foreground, structure=disk, border_value=1)
        foreground = ndimage.binary_dilation(foreground, structure=disk, border_value=0)
    labels, count = ndimage.label(foreground, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        raise ValueError(
            f"Ultrasound fan crop: no pixel above {threshold} x max{source_of(img)} survives the opening; the frame is "
            "empty or the threshold/opening_radius are too large."
        )
    sizes = np.bincount(labels.ravel())[1:]
    mask = ndimage.binary_fill_holes(labels == (int(np.argmax(sizes)) + 1))
    return _convex_hull_mask(mask) if convex else mask


def _box(mask: np.ndarray, margin: int) -> tuple[list[int], list[int]]:
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    start = [max(int(rows[0]) - margin, 0), max(int(cols[0]) - margin, 0)]
    end = [min(int(rows[-1]) + 1 + margin, mask.shape[0]), min(int(cols[-1]) + 1 + margin, mask.shape[1])]
    return start, end


class UltrasoundFanCrop(Transform):
    """Crop an ultrasound frame to its imaging fan and blank what lies outside the fan.

    The fan is :func:`fan_mask`; the image is cropped to the fan's bounding box (plus ``margin`` pixels) with
    :class:`monai.transforms.SpatialCrop` (metadata/affine updated), and, with ``mask_outside``, pixels outside the
    fan are set to ``fill`` — removing burnt-in text, calipers and scale bars outside the fan.

    Args:
        threshold: foreground threshold as a fraction of the frame's maximum.
        opening_radius: radius (pixels) of the opening that detaches thin annotations from the fan.
        margin: pixels added around the fan's bounding box.
        mask_outside: set pixels outside the fan to ``fill``.
        fill: value outside the fan.
        convex: use the convex hull of the fan (see :func:`fan_mask`).

    Input ``[C, H, W]``; output ``[C, h, w]`` with ``h <= H``, ``w <= W``, float32.
    """

    def __init__(
        self,
        threshold: float = 0.04,
        opening_radius: int = 2,
        margin: int = 0,
        mask_outside: bool = True,
        fill: float = 0.0,
        convex: bool = True,
    ) -> None:
        self.convex = convex
        self.threshold = float(threshold)
        self.opening_radius = int(opening_radius)
        self.margin = int(margin)
        self.mask_outside = mask_outside
        self.fill = float(fill)

    def compute(self, img: torch.Tensor) -> tuple[np.ndarray, list[int], list[int]]:
        """``(fan mask [H, W], roi_start, roi_end)`` of ``img`` ``[C, H, W]``."""
        if img.ndim != 3:
            raise ValueError(f"UltrasoundFanCrop expects a 2D frame [C, H, W]{source_of(img)}, got {tuple(img.shape)}.")
        mask = fan_mask(img, self.threshold, self.opening_radius, self.convex)
        start, end = _box(mask, self.margin)
        return mask, start, end

    def apply(self, img: torch.Tensor, mask: np.ndarray, start: list[int], end: list[int]) -> torch.Tensor:
        """Crop ``img`` ``[C, H, W]`` to ``start:end`` and blank it outside ``mask``."""
        if tuple(img.shape[1:]) != mask.shape:
            raise ValueError(f"UltrasoundFanCrop: image {tuple(img.shape)} and fan mask {mask.shape} differ in size.")
        x = like(torch.as_tensor(img, dtype=torch.float32), img)
        if self.mask_outside:
            keep = torch.from_numpy(mask)[None]
            x = torch.where(keep, x, torch.full_like(x, self.fill))
        return SpatialCrop(roi_start=start, roi_end=end)(x)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return self.apply(img, *self.compute(img))


class UltrasoundFanCropd(MapTransform):
    """Dictionary version of :class:`UltrasoundFanCrop`: the fan found on ``source_key`` crops every key.

    Args:
        keys: keys to crop (image, and e.g. a segmentation mask of the same size).
        source_key: key the fan is computed on (default: the first of ``keys``).
        allow_missing_keys: don't raise if a key of ``keys`` is missing.
        crop_options: ``threshold``, ``opening_radius``, ``margin``, ``mask_outside``, ``fill``, ``convex``:
            passed to :class:`UltrasoundFanCrop`, which documents them and holds their defaults.
    """

    def __init__(
        self, keys: KeysCollection, source_key: str | None = None, *, allow_missing_keys: bool = False, **crop_options
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key if source_key is not None else self.keys[0]
        self.cropper = UltrasoundFanCrop(**crop_options)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.source_key not in d:
            raise KeyError(f"UltrasoundFanCropd: source key {self.source_key!r} not in the data (keys: {list(d)}).")
        mask, start, end = self.cropper.compute(d[self.source_key])
        for key in self.key_iterator(d):
            d[key] = self.cropper.apply(d[key], mask, start, end)
        return d


class RandSpeckleNoise(RandomizableTransform):
    """Multiplicative speckle: ``out = img * n`` with ``n`` drawn per pixel (shared by the channels), ``E[n] = 1``.

    ``distribution="gamma"``: ``n ~ Gamma(shape=L, scale=1/L)``, the intensity speckle of an ``L``-look image,
    ``Var[n] = 1/L``; ``L`` is drawn uniformly from ``looks`` when a range is given.
    ``distribution="rayleigh"``: ``n ~ Rayleigh(sigma=sqrt(2/pi))`` (fully developed amplitude speckle scaled to
    mean 1), ``Var[n] = (4 - pi) / pi``.

    Args:
        prob: probability of applying the noise.
        distribution: ``"gamma"`` or ``"rayleigh"``.
        looks: ``L`` (a number or ``(min, max)``) for ``"gamma"``; larger is weaker.
        clip: ``(low, high)`` to clip the result to, or ``None``.

    Input ``[C, *spatial]``; output float32 ``[C, *spatial]``. Seed with ``set_random_state``.
    """

    DISTRIBUTIONS = ("gamma", "rayleigh")

    def __init__(
        self,
        prob: float = 0.1,
        distribution: str = "gamma",
        looks: float | Sequence[float] = (4.0, 16.0),
        clip: Sequence[float] | None = (0.0, 1.0),
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(
                f"Unknown speckle distribution {distribution!r}; choose one of {list(self.DISTRIBUTIONS)}."
            )
        self.distribution = distribution
        self.looks = (float(looks), float(looks)) if np.isscalar(looks) else (float(looks[0]), float(looks[1]))
        if not 0 < self.looks[0] <= self.looks[1]:
            raise ValueError(f"looks must be > 0 and (min, max) ordered, got {looks!r}.")
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
        self._looks = self.looks[0]
        self._seed = 0

    def randomize(self, data=None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        self._looks = float(self.R.uniform(*self.looks))
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def multiplier(self, spatial_shape: Sequence[int]) -> np.ndarray:
        """The noise ``n`` of the current draw, float64 ``[1, *spatial_shape]`` (call ``randomize`` first)."""
        rng = np.random.default_rng(self._seed)
        shape = (1, *spatial_shape)
        if self.distribution == "gamma":
            return rng.gamma(shape=self._looks, scale=1.0 / self._looks, size=shape)
        return rng.rayleigh(scale=np.sqrt(2.0 / np.pi), size=shape)

    def apply(self, img: torch.Tensor, noise: np.ndarray) -> torch.Tensor:
        out = torch.as_tensor(img, dtype=torch.float32) * torch.from_numpy(noise).float()
        if self.clip is not None:
            out = out.clamp(*self.clip)
        return like(out, img)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return like(torch.as_tensor(img, dtype=torch.float32), img)
        return self.apply(img, self.multiplier(img.shape[1:]))


class RandSpeckleNoised(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandSpeckleNoise`; one draw per call, the same noise for every key."""

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.1,
        distribution: str = "gamma",
        looks: float | Sequence[float] = (4.0, 16.0),
        clip: Sequence[float] | None = (0.0, 1.0),
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand_speckle = RandSpeckleNoise(1.0, distribution, looks, clip)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.rand_speckle.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            for key in self.key_iterator(d):
                d[key] = like(torch.as_tensor(d[key], dtype=torch.float32), d[key])
            return d
        self.rand_speckle.randomize()
        noise = None
        for key in self.key_iterator(d):
            if noise is None or noise.shape[1:] != tuple(d[key].shape[1:]):
                noise = self.rand_speckle.multiplier(d[key].shape[1:])
            d[key] = self.rand_speckle.apply(d[key], noise)
        return d

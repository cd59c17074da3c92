"""MRI intensity: z-score over the foreground, mapped to ``[0, 1]`` with the background kept at 0.

For percentile scaling use MONAI's :class:`monai.transforms.ScaleIntensityRangePercentiles` directly (the ``mri``
preset does). MONAI's :class:`monai.transforms.NormalizeIntensity` with ``nonzero=True`` z-scores the nonzero voxels
but leaves an unbounded range and background 0 in the middle of it; a natural-image teacher expects ``[0, 1]``
with black background, which is what :class:`ForegroundZScore` adds.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, NormalizeIntensity, Transform

from monai_rd.transforms._utils import like

__all__ = ["ForegroundZScore", "ForegroundZScored"]


class ForegroundZScore(Transform):
    """Z-score the nonzero voxels of each channel, clip to ``[-clip_sigma, clip_sigma]``, map to ``[0, 1]``.

    ``out = (clip((x - mean_fg) / std_fg, -k, k) + k) / (2 k)`` on voxels with ``x != 0`` (statistics per channel,
    over those voxels only, by :class:`monai.transforms.NormalizeIntensity` ``(nonzero=True, channel_wise=True)``);
    voxels with ``x == 0`` stay 0.

    Args:
        clip_sigma: ``k``, the number of standard deviations mapped to the ends of ``[0, 1]``.

    Input ``[C, *spatial]``; output float32 ``[C, *spatial]`` in ``[0, 1]``.
    """

    def __init__(self, clip_sigma: float = 3.0) -> None:
        if clip_sigma <= 0:
            raise ValueError(f"clip_sigma must be > 0, got {clip_sigma}.")
        self.clip_sigma = float(clip_sigma)
        self.normalize = NormalizeIntensity(nonzero=True, channel_wise=True, dtype=torch.float32)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(img, dtype=torch.float32)
        foreground = x != 0
        z = torch.as_tensor(self.normalize(x), dtype=torch.float32)
        k = self.clip_sigma
        out = torch.where(foreground, (z.clamp(-k, k) + k) / (2 * k), torch.zeros_like(z))
        return like(out, img)


class ForegroundZScored(MapTransform):
    """Dictionary version of :class:`ForegroundZScore`."""

    def __init__(self, keys: KeysCollection, clip_sigma: float = 3.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ForegroundZScore(clip_sigma)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d

"""Choosing the 2D slices of a volume that a 2D student trains on."""

from __future__ import annotations

import numpy as np

__all__ = ["SLICE_MODES", "select_slices"]

SLICE_MODES = ("all", "middle", "foreground")


def select_slices(
    volume: np.ndarray, mode: str = "middle", threshold: float | None = None, min_fraction: float = 0.01
) -> list[int]:
    """Indices along axis 0 of ``volume`` (``[S, ...]``, e.g. ``[S, H, W]`` or ``[S, H, W, T]``).

    Args:
        mode: ``"all"`` every slice; ``"middle"`` the slice ``S // 2``; ``"foreground"`` the slices in which at
            least ``min_fraction`` of the values exceed ``threshold``.
        threshold: foreground intensity (in the reader's units: HU for CT, stored values for MR...); ``None``
            means "above the volume minimum" (any non-background voxel of a zero-padded or skull-stripped
            volume).
        min_fraction: share of a slice's values that must be foreground (0 < min_fraction <= 1).

    Raises:
        ValueError: unknown mode, empty volume, or no slice has foreground (say which threshold to lower).
    """
    if mode not in SLICE_MODES:
        raise ValueError(f"slice mode must be one of {SLICE_MODES}, got {mode!r}.")
    volume = np.asarray(volume)
    if volume.ndim < 2 or volume.shape[0] == 0:
        raise ValueError(f"select_slices expects a [S, ...] volume with S >= 1, got shape {volume.shape}.")
    n = volume.shape[0]
    if mode == "all":
        return list(range(n))
    if mode == "middle":
        return [n // 2]
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}.")
    level = float(volume.min()) if threshold is None else float(threshold)
    fraction = (volume.reshape(n, -1) > level).mean(axis=1)
    chosen = [int(i) for i in np.nonzero(fraction >= min_fraction)[0]]
    if not chosen:
        raise ValueError(
            f"No slice has at least {min_fraction:.3g} of its values above {level:g} (best: {fraction.max():.3g}); "
            "lower slice_threshold/slice_min_fraction or use slice_mode='middle'."
        )
    return chosen

"""select_slices: which slices of a volume a 2D student sees."""

from __future__ import annotations

import numpy as np
import pytest

from monai_rd.data import select_slices


def volume():
    v = np.zeros((6, 4, 5))
    v[2, 1:3, 1:4] = 5.0  # 6 of 20 voxels
    v[3, 0, 0] = 5.0  # 1 of 20 voxels
    return v


def test_all_and_middle():
    assert select_slices(volume(), "all") == [0, 1, 2, 3, 4, 5]
    assert select_slices(volume(), "middle") == [3]
    assert select_slices(np.zeros((5, 2, 2)), "middle") == [2]


def test_foreground_threshold_and_fraction():
    assert select_slices(volume(), "foreground") == [2, 3]  # above the minimum, >= 1 %
    assert select_slices(volume(), "foreground", min_fraction=0.1) == [2]  # 6/20 = 0.3, 1/20 = 0.05
    assert select_slices(volume(), "foreground", threshold=4.0, min_fraction=0.3) == [2]
    with pytest.raises(ValueError, match="No slice has at least 0.31"):
        select_slices(volume(), "foreground", threshold=4.0, min_fraction=0.31)


def test_foreground_over_channels():
    v = np.zeros((3, 2, 2, 2))  # [S, H, W, T]
    v[1, 0, 0, 1] = 1.0
    assert select_slices(v, "foreground", min_fraction=0.1) == [1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="slice mode must be one of"):
        select_slices(volume(), "top")
    with pytest.raises(ValueError, match="min_fraction"):
        select_slices(volume(), "foreground", min_fraction=0)
    with pytest.raises(ValueError, match="S >= 1"):
        select_slices(np.zeros((0, 3)), "all")

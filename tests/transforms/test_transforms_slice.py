"""ExtractSlice / ExtractSliced: [C, S, H, W] -> [C, H, W] with the affine kept in world coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_rd.transforms import ExtractSlice, ExtractSliced


def test_extracts_the_slice_and_keeps_world_coordinates():
    data = torch.arange(2 * 4 * 3 * 5, dtype=torch.float32).reshape(2, 4, 3, 5)
    affine = torch.tensor(
        [[0.0, 0.0, -0.7, 10.0], [0.0, -0.7, 0.0, 20.0], [2.5, 0.0, 0.0, -30.0], [0, 0, 0, 1]], dtype=torch.float64
    )
    img = MetaTensor(data, affine=affine)
    out = ExtractSlice()(img, 2)
    assert tuple(out.shape) == (2, 3, 5)
    torch.testing.assert_close(out.as_tensor(), data[:, 2])
    for h, w in [(0, 0), (2, 4), (1, 3)]:
        world_3d = affine.numpy() @ np.array([2, h, w, 1.0])
        world_2d = out.affine.numpy() @ np.array([h, w, 0, 1.0])
        np.testing.assert_allclose(world_2d, world_3d)


def test_2d_passthrough_and_mismatches():
    img = torch.zeros(3, 4, 5)
    assert ExtractSlice()(img, -1) is img
    with pytest.raises(ValueError, match="slice 0 asked of a 2D image"):
        ExtractSlice()(img, 0)
    with pytest.raises(ValueError, match="slice 7 out of range for 4 slices"):
        ExtractSlice()(torch.zeros(1, 4, 5, 5), 7)
    with pytest.raises(ValueError, match="out of range"):
        ExtractSlice()(torch.zeros(1, 4, 5, 5), -1)


def test_dictionary_form():
    d = {"image": torch.arange(24.0).reshape(1, 2, 3, 4), "slice": torch.tensor(1)}
    out = ExtractSliced("image")(d)
    torch.testing.assert_close(out["image"], d["image"][:, 1])
    with pytest.raises(KeyError, match="no 'slice' key"):
        ExtractSliced("image")({"image": torch.zeros(1, 2, 3)})

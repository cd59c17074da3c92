"""MRI intensity: foreground z-score and the preset's percentile scaling, against NumPy float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_rd.transforms import ForegroundZScore, ForegroundZScored, load_preset


def brain_like(seed: int = 0, channels: int = 1) -> np.ndarray:
    """A disc of tissue (scanner units in the hundreds) on a zero background, ``[C, 24, 24]``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:24, :24]
    disc = (yy - 12) ** 2 + (xx - 11) ** 2 < 81
    img = np.zeros((channels, 24, 24))
    for c in range(channels):
        img[c][disc] = rng.gamma(4.0, 100.0 * (c + 1), size=disc.sum())
    img[:, 3, 3] = 0.0
    return img


def test_foreground_zscore_matches_numpy():
    img = brain_like(channels=2)
    img[1, 12, 11] = 1e5  # an outlier, clipped at +3 sigma
    out = ForegroundZScore(clip_sigma=3.0)(torch.tensor(img, dtype=torch.float32)).numpy()
    for c in range(2):
        fg = img[c] != 0
        mean, std = img[c][fg].mean(), img[c][fg].std(ddof=0)
        expected = np.where(fg, (np.clip((img[c] - mean) / std, -3, 3) + 3) / 6, 0.0)
        np.testing.assert_allclose(out[c], expected, atol=1e-5)
    assert out[1, 12, 11] == pytest.approx(1.0)
    assert (out[:, 0, 0] == 0).all() and out.min() >= 0 and out.max() <= 1


def test_foreground_zscore_dict_and_bad_args():
    img = torch.tensor(brain_like(), dtype=torch.float32)
    out = ForegroundZScored("image", clip_sigma=2.0)({"image": img, "label": 0})
    fg = img.numpy()[0] != 0
    vals = img.numpy()[0][fg].astype(np.float64)
    expected = (np.clip((vals - vals.mean()) / vals.std(), -2, 2) + 2) / 4
    np.testing.assert_allclose(out["image"].numpy()[0][fg], expected, atol=1e-5)
    with pytest.raises(ValueError, match="clip_sigma"):
        ForegroundZScore(clip_sigma=0)


def test_mri_preset_percentile_scaling():
    """The preset's ScaleIntensityRangePercentilesd maps the 0.5th/99.5th percentiles of each channel to 0/1."""
    img = brain_like(seed=1, channels=3)  # e.g. T1, T2, FLAIR as the three channels
    out = load_preset("mri", "eval", image_size=24)({"image": torch.tensor(img, dtype=torch.float32)})["image"]
    out = np.asarray(out)
    assert out.shape == (3, 24, 24)
    for c in range(3):  # channel-wise percentiles
        lo, hi = np.percentile(img[c], 0.5), np.percentile(img[c], 99.5)
        np.testing.assert_allclose(out[c], np.clip((img[c] - lo) / (hi - lo), 0, 1), atol=1e-5)
    # a grey 8-bit JPG slice (BTC) becomes three equal channels
    grey = load_preset("mri", "eval", image_size=24)({"image": torch.tensor(img[:1], dtype=torch.float32)})["image"]
    np.testing.assert_array_equal(np.asarray(grey[0]), np.asarray(grey[2]))


def test_mri_preset_zscore_option():
    img = brain_like(seed=2)
    out = load_preset("mri", "eval", image_size=24, intensity="@intensity_zscore", clip_sigma=2.5)(
        {"image": torch.tensor(img, dtype=torch.float32)}
    )["image"]
    fg = img[0] != 0
    mean, std = img[0][fg].mean(), img[0][fg].std()
    expected = np.where(fg, (np.clip((img[0] - mean) / std, -2.5, 2.5) + 2.5) / 5, 0.0)
    np.testing.assert_allclose(np.asarray(out[1]), expected, atol=1e-5)

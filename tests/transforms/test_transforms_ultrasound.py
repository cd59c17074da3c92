"""Ultrasound: fan crop on a synthetic frame with a known fan, burnt-in text and a scale bar; speckle statistics,
distribution (KS test against SciPy) and seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage, stats

from monai_rd.transforms import (
    RandSpeckleNoise,
    RandSpeckleNoised,
    UltrasoundFanCrop,
    UltrasoundFanCropd,
    fan_mask,
    load_preset,
)

H, W = 90, 100


def synthetic_frame(seed: int = 0):
    """A B-mode frame ``[1, H, W]`` in [0, 1]: a sector fan with speckle texture and an anechoic cyst (0) inside;
    outside the fan, text strokes in the corner, a dotted scale bar and a caliper cross.

    Returns (frame, fan, annotations)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W].astype(np.float64)
    r = np.hypot(yy + 10, xx - 50)
    angle = np.degrees(np.arctan2(xx - 50, yy + 10))
    fan = (r >= 20) & (r <= 95) & (np.abs(angle) <= 32)
    frame = np.zeros((H, W))
    frame[fan] = rng.uniform(0.25, 0.9, size=fan.sum())
    cyst = np.hypot(yy - 55, xx - 50) <= 6
    frame[cyst] = 0.0
    notes = np.zeros((H, W), dtype=bool)
    notes[2:9, 3] = notes[2, 3:9] = notes[5, 3:8] = True  # an "F"
    notes[2:9, 11] = notes[8, 11:16] = True  # an "L"
    notes[10:60:3, 96] = True  # scale bar dots
    notes[30, 90:95] = notes[28:33, 92] = True  # caliper cross
    notes &= ~fan
    frame[notes] = 1.0
    return frame[None], fan, notes


def test_fan_crop_finds_the_fan_and_blanks_annotations():
    frame, fan, notes = synthetic_frame()
    crop = UltrasoundFanCrop()
    mask, start, end = crop.compute(torch.tensor(frame))
    rows, cols = np.nonzero(fan.any(axis=1))[0], np.nonzero(fan.any(axis=0))[0]
    box = [rows[0], cols[0]], [rows[-1] + 1, cols[-1] + 1]
    assert np.abs(np.array(start) - box[0]).max() <= 1 and np.abs(np.array(end) - box[1]).max() <= 1, (start, end, box)
    # the mask is the fan (cyst included), up to the corners the opening rounds off, and no annotation
    assert mask[ndimage.binary_erosion(fan, iterations=2)].all()
    yy, xx = np.mgrid[:H, :W]
    lens = np.hypot(yy + 10, xx - 50) < 20  # the convex hull spans the inner arc of the curvilinear fan
    assert not mask[~(ndimage.binary_dilation(fan) | lens)].any()
    assert not mask[notes].any()
    out = crop(MetaTensor(torch.tensor(frame, dtype=torch.float32), meta={"filename_or_obj": "us.png"}))
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "us.png"
    expected = np.where(mask, frame[0], 0.0)[start[0] : end[0], start[1] : end[1]]
    np.testing.assert_allclose(out.numpy()[0], expected, atol=1e-6)
    inside = ndimage.binary_erosion(fan, iterations=2)[start[0] : end[0], start[1] : end[1]]
    original = frame[0][start[0] : end[0], start[1] : end[1]]
    np.testing.assert_allclose(out.numpy()[0][inside], original[inside], atol=1e-6)
    assert (out.numpy() < 1.0).all(), "all burnt-in annotations (value 1.0) are gone"


def test_fan_crop_dictionary_crops_every_key_alike():
    frame, fan, _ = synthetic_frame(1)
    lesion = np.zeros_like(frame)
    lesion[0, 50:60, 45:55] = 1.0
    rgb = np.repeat(frame, 3, axis=0)
    out = UltrasoundFanCropd(["image", "mask"], margin=2)({"image": torch.tensor(rgb), "mask": torch.tensor(lesion)})
    assert out["image"].shape[1:] == out["mask"].shape[1:]
    assert float(out["mask"].sum()) == pytest.approx(100.0)  # the lesion lies in the fan and survives whole
    mask, start, end = UltrasoundFanCrop(margin=2).compute(torch.tensor(rgb))
    assert tuple(out["image"].shape) == (3, end[0] - start[0], end[1] - start[1])


def test_fan_crop_errors():
    with pytest.raises(ValueError, match="no pixel above .* in 'black.png'"):
        UltrasoundFanCrop()(MetaTensor(torch.zeros(1, 16, 16), meta={"filename_or_obj": "black.png"}))
    with pytest.raises(KeyError, match="source key 'image'"):
        UltrasoundFanCropd(["image", "mask"])({"mask": torch.ones(1, 8, 8)})


def multiplier(transform, shape=(1, 200, 200), value=0.5) -> np.ndarray:
    return transform(torch.full(shape, value)).numpy() / value


def test_gamma_speckle_statistics():
    t = RandSpeckleNoise(prob=1.0, distribution="gamma", looks=8.0, clip=None)
    t.set_random_state(seed=0)
    n = multiplier(t).ravel().astype(np.float64)
    assert n.mean() == pytest.approx(1.0, abs=0.01)
    assert n.var() == pytest.approx(1 / 8, rel=0.05)
    assert stats.kstest(n[::4], stats.gamma(a=8.0, scale=1 / 8.0).cdf).pvalue > 1e-3


def test_rayleigh_speckle_statistics():
    t = RandSpeckleNoise(prob=1.0, distribution="rayleigh", clip=None)
    t.set_random_state(seed=1)
    n = multiplier(t).ravel().astype(np.float64)
    assert n.mean() == pytest.approx(1.0, abs=0.01)
    assert n.var() == pytest.approx((4 - np.pi) / np.pi, rel=0.05)
    assert stats.kstest(n[::4], stats.rayleigh(scale=np.sqrt(2 / np.pi)).cdf).pvalue > 1e-3


def test_speckle_seeding_probability_channels_and_clip():
    img = torch.rand(1, 32, 32)
    a = RandSpeckleNoise(prob=1.0).set_random_state(seed=5)
    b = RandSpeckleNoise(prob=1.0).set_random_state(seed=5)
    c = RandSpeckleNoise(prob=1.0).set_random_state(seed=6)
    first = a(img)
    assert torch.equal(first, b(img)) and not torch.equal(first, c(img))
    assert not torch.equal(first, a(img)), "a new draw on each call"
    assert 4.0 <= a._looks <= 16.0
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0  # default clip to [0, 1]
    assert torch.equal(RandSpeckleNoise(prob=0.0)(img), img)
    rgb = RandSpeckleNoise(prob=1.0).set_random_state(seed=2)(img.repeat(3, 1, 1))
    assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[0], rgb[2]), "one multiplier shared by the channels"
    # prob is honoured: about 30% of calls apply the noise
    t = RandSpeckleNoise(prob=0.3).set_random_state(seed=0)
    applied = sum(not torch.equal(t(img), img) for _ in range(200))
    assert 40 <= applied <= 80


def test_speckle_dictionary_same_noise_for_every_key_and_seeded():
    data = {"image": torch.full((1, 16, 16), 0.5), "other": torch.full((1, 16, 16), 0.25), "label": 3}
    d1 = RandSpeckleNoised(["image", "other"], prob=1.0, clip=None).set_random_state(seed=3)(data)
    d2 = RandSpeckleNoised(["image", "other"], prob=1.0, clip=None).set_random_state(seed=3)(data)
    assert torch.equal(d1["image"], d2["image"]) and d1["label"] == 3
    np.testing.assert_allclose(d1["image"].numpy() / 0.5, d1["other"].numpy() / 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match="Unknown speckle distribution"):
        RandSpeckleNoise(distribution="poisson")


def test_ultrasound_preset_crops_before_resizing():
    frame, fan, _ = synthetic_frame(2)
    u8 = np.round(frame * 255)
    out = np.asarray(load_preset("ultrasound", "eval", image_size=40)({"image": torch.tensor(u8)})["image"])
    assert out.shape == (3, 40, 40) and out.max() < 0.999  # annotations (255) are gone
    no_crop = load_preset("ultrasound", "eval", image_size=40, crop=[])
    uncropped = np.asarray(no_crop({"image": torch.tensor(u8)})["image"])
    assert uncropped.max() > 0.3 and not np.allclose(out, uncropped)
    train = load_preset("ultrasound", "train", image_size=40, speckle_prob=1.0)
    train.set_random_state(seed=0)
    again = load_preset("ultrasound", "train", image_size=40, speckle_prob=1.0)
    again.set_random_state(seed=0)
    np.testing.assert_array_equal(
        np.asarray(train({"image": torch.tensor(u8)})["image"]), np.asarray(again({"image": torch.tensor(u8)})["image"])
    )


def test_convex_fan_keeps_shadowing_at_the_fan_edge():
    """A dark posterior shadow reaching the fan's far edge, crossed by a thin bright line: the convex fan keeps it,
    plain hole filling would blank the line."""
    frame, fan, notes = synthetic_frame(3)
    yy, xx = np.mgrid[:H, :W]
    shadow = fan & (np.abs(xx - 50) <= 6) & (yy >= 62)
    frame[0][shadow] = 0.0
    line = shadow & (yy == 75)
    frame[0][line] = 0.8
    mask, start, end = UltrasoundFanCrop(convex=True).compute(torch.tensor(frame))
    # all of the shadow but the sagitta of the arc it cuts (the hull spans the notch with a chord)
    assert mask[shadow & (np.hypot(yy + 10, xx - 50) <= 93)].all() and not mask[notes].any()
    # the hull adds only the lens under the probe's inner arc (near the apex), checked against SciPy's hull
    from scipy.spatial import ConvexHull

    extra = mask & ~ndimage.binary_dilation(fan)  # beyond the staircase of the fan's straight edges
    assert (np.hypot(yy + 10, xx - 50)[extra] < 20).all()
    component = fan_mask(torch.tensor(frame), convex=False)
    hull = ConvexHull(np.argwhere(component).astype(float))
    grid = np.indices((H, W)).reshape(2, -1).T.astype(float)
    inside = np.all(grid @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-6, axis=1).reshape(H, W)
    # OpenCV's polygon fill also takes pixels the hull's edges cross: at most one pixel beyond the exact hull
    assert mask[inside].all() and not mask[~ndimage.binary_dilation(inside)].any()
    out = UltrasoundFanCrop(convex=True)(torch.tensor(frame))
    assert float(out[0, 75 - start[0], 50 - start[1]]) == pytest.approx(0.8)
    concave, *_ = UltrasoundFanCrop(convex=False).compute(torch.tensor(frame))
    assert not concave[line].all(), "without the hull the thin line in the shadow is cut off"

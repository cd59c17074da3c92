"""Dermoscopy: Shades of Gray against the Finlayson-Trezzi formula in NumPy float64; hair removal on a synthetic
skin image with hair lines at known positions, its black-hat mask against SciPy's grey morphology."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage

from monai_rd.transforms import HairRemoval, HairRemovald, ShadesOfGray, ShadesOfGrayd, load_preset


def shades_of_gray_numpy(img: np.ndarray, p: float) -> np.ndarray:
    """Reference: e_c = (mean I_c^p)^(1/p), e /= ||e||, I_c / (sqrt(3) e_c), clipped to [0, 1]."""
    flat = img.reshape(3, -1).astype(np.float64)
    e = flat.max(axis=1) if np.isinf(p) else np.mean(flat**p, axis=1) ** (1.0 / p)
    e = e / np.sqrt(np.sum(e**2))
    return np.clip(img / (np.sqrt(3.0) * e)[:, None, None], 0.0, 1.0)


def scene(seed: int = 0, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.6, size=(3, size, size))


@pytest.mark.parametrize("p", [1.0, 2.0, 6.0, np.inf])
def test_shades_of_gray_matches_formula(p):
    img = scene() * np.array([1.0, 0.7, 0.5])[:, None, None]
    out = ShadesOfGray(power=p)(torch.tensor(img, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out, shades_of_gray_numpy(img, p), atol=1e-5)


def test_shades_of_gray_removes_a_colour_cast():
    grey_scene = np.repeat(scene(1)[:1], 3, axis=0)  # a neutral scene: identical channels
    cast = grey_scene * np.array([0.9, 0.6, 0.3])[:, None, None]  # seen under a reddish illuminant
    out = ShadesOfGray(power=6)(torch.tensor(cast, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)
    np.testing.assert_allclose(out[0], out[2], atol=1e-5)
    # a neutral image is left unchanged (grey illuminant)
    same = ShadesOfGray(power=6)(torch.tensor(grey_scene, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(same, grey_scene, atol=1e-5)


def test_shades_of_gray_dict_and_errors():
    img = scene(2)
    out = ShadesOfGrayd("image", power=6.0, clip_max=None)({"image": torch.tensor(img), "label": 1})
    e = np.mean(img.reshape(3, -1) ** 6, axis=1) ** (1 / 6)
    expected = img / (np.sqrt(3) * e / np.linalg.norm(e))[:, None, None]
    np.testing.assert_allclose(out["image"].numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match=r"RGB image \[3, H, W\] in 'a.png'"):
        ShadesOfGray()(MetaTensor(torch.rand(1, 4, 4), meta={"filename_or_obj": "a.png"}))
    with pytest.raises(ValueError, match="black"):
        ShadesOfGray()(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="power"):
        ShadesOfGray(power=0.5)


def skin_with_hair(size: int = 96):
    """Smooth skin-coloured image ``[3, H, W]`` and the same with dark hair lines; plus the known hair mask."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    shade = 0.85 + 0.1 * np.sin(xx / 30.0) * np.cos(yy / 40.0)
    clean = np.stack([0.85 * shade, 0.62 * shade, 0.5 * shade])
    hair = np.zeros((size, size), dtype=bool)
    for a, b, c in [(1.0, 0.0, -30.0), (0.0, 1.0, -70.0), (1.0, -1.0, 5.0), (0.6, 1.0, -90.0)]:
        hair |= np.abs(a * xx + b * yy + c) / np.hypot(a, b) <= 1.0  # lines about 3 px wide
    with_hair = clean.copy()
    with_hair[:, hair] = np.array([0.15, 0.1, 0.08])[:, None]
    return clean, with_hair, hair


def test_hair_mask_finds_the_lines_and_matches_scipy_blackhat():
    clean, with_hair, hair = skin_with_hair()
    remover = HairRemoval(kernel_size=11, threshold=0.04, dilate=1)
    mask = remover.hair_mask(torch.tensor(with_hair, dtype=torch.float32))
    assert mask[hair].mean() > 0.99, "every hair pixel is found"
    near = ndimage.binary_dilation(hair, iterations=3)
    assert not mask[~near].any(), "nothing away from the hair is flagged"
    # independent black-hat: SciPy grey closing with the same footprint, minus the image
    grey = with_hair.mean(axis=0)
    footprint = remover.kernel.astype(bool)  # the element's shape is a setting; the morphology is what is checked
    assert footprint.shape == (11, 11) and footprint[5].all() and footprint[:, 5].all() and not footprint[0, 0]
    blackhat = ndimage.grey_closing(grey, footprint=footprint, mode="nearest") - grey
    disk = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
    expected = ndimage.binary_dilation(blackhat > 0.04, structure=disk)
    assert (mask != expected).mean() < 0.002


def test_hair_removal_restores_the_skin():
    clean, with_hair, hair = skin_with_hair()
    out = HairRemoval(kernel_size=11)(torch.tensor(with_hair, dtype=torch.float32)).numpy()
    before = np.abs(with_hair - clean)[:, hair].mean()
    after = np.abs(out - clean)[:, hair].mean()
    assert before > 0.4 and after < 0.02, (before, after)
    mask = HairRemoval(kernel_size=11).hair_mask(torch.tensor(with_hair, dtype=torch.float32))
    np.testing.assert_allclose(out[:, ~mask], with_hair[:, ~mask], atol=1e-6)  # untouched outside the mask
    # no hair: nothing changes
    unchanged = HairRemovald("image")({"image": torch.tensor(clean, dtype=torch.float32)})["image"].numpy()
    np.testing.assert_allclose(unchanged, clean, atol=1e-6)
    with pytest.raises(ValueError, match="kernel_size"):
        HairRemoval(kernel_size=4)


def test_dermoscopy_preset_applies_hair_removal_then_shades_of_gray():
    clean, with_hair, hair = skin_with_hair(64)
    u8 = np.round(with_hair * 255)
    out = load_preset("dermoscopy", "eval", image_size=64)({"image": torch.tensor(u8, dtype=torch.float32)})["image"]
    x = torch.tensor(u8 / 255.0, dtype=torch.float32)
    expected = ShadesOfGray(6.0)(HairRemoval(11, 0.04)(x)).numpy()
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5)
    no_hair = load_preset("dermoscopy", "eval", image_size=64, hair_removal=[])({"image": torch.tensor(u8)})["image"]
    np.testing.assert_allclose(np.asarray(no_hair), shades_of_gray_numpy(u8 / 255.0, 6.0), atol=1e-5)

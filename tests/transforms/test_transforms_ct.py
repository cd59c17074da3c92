"""CT windowing, checked against the window formula evaluated by hand in NumPy float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_rd.transforms import CT_WINDOWS, CTMultiWindow, CTMultiWindowd, CTWindow, CTWindowd, load_preset

HU = np.linspace(-2000.0, 3000.0, 1001)[None, None, :]  # [1, 1, 1001] covering every window and beyond


def expected_window(hu: np.ndarray, width: float, level: float) -> np.ndarray:
    return np.clip((hu - (level - width / 2.0)) / width, 0.0, 1.0)


def test_named_windows_have_the_published_values():
    # Radiopaedia "Windowing (CT)": lung W1500/L-600, mediastinum W350/L50, brain W80/L40, bone W1800/L400
    assert CT_WINDOWS["lung"] == (1500.0, -600.0)
    assert CT_WINDOWS["mediastinum"] == (350.0, 50.0)
    assert CT_WINDOWS["brain"] == (80.0, 40.0)
    assert CT_WINDOWS["bone"] == (1800.0, 400.0)
    assert CT_WINDOWS["bone_wide"] == (2000.0, 500.0)
    assert CT_WINDOWS["abdomen"] == (400.0, 40.0)


@pytest.mark.parametrize("name", sorted(CT_WINDOWS))
def test_window_matches_formula(name):
    width, level = CT_WINDOWS[name]
    out = CTWindow(name)(torch.tensor(HU, dtype=torch.float32))
    assert out.dtype == torch.float32 and out.shape == (1, 1, 1001)
    np.testing.assert_allclose(out.numpy(), expected_window(HU, width, level), atol=1e-6)


def test_window_landmarks_by_hand():
    hu = torch.tensor([[[-1350.0, -600.0, 150.0, 40.0, 0.0, 80.0]]])
    lung = CTWindow("lung")(hu)[0, 0, :3]
    np.testing.assert_allclose(lung.numpy(), [0.0, 0.5, 1.0], atol=1e-7)  # L -/+ W/2 and L
    brain = CTWindow("brain")(hu)[0, 0, 3:]
    np.testing.assert_allclose(brain.numpy(), [0.5, 0.0, 1.0], atol=1e-7)
    custom = CTWindow((100.0, 0.0))(torch.tensor([[[-50.0, -25.0, 0.0, 25.0, 50.0, 1000.0]]]))
    np.testing.assert_allclose(custom.numpy()[0, 0], [0.0, 0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-7)


def test_multi_window_stacks_channels():
    img = MetaTensor(torch.tensor(HU, dtype=torch.float32), meta={"filename_or_obj": "slice.dcm"})
    out = CTMultiWindow(["lung", "mediastinum", (80.0, 40.0)])(img)
    assert out.shape == (3, 1, 1001) and isinstance(out, MetaTensor)
    assert out.meta["filename_or_obj"] == "slice.dcm"
    expected = np.concatenate(
        [expected_window(HU, 1500, -600), expected_window(HU, 350, 50), expected_window(HU, 80, 40)], axis=0
    )
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


def test_dictionary_forms_and_other_keys():
    data = {"image": torch.tensor(HU, dtype=torch.float32), "label": 2}
    out = CTMultiWindowd("image", windows=("lung", "bone", "brain"))(data)
    assert out["label"] == 2 and out["image"].shape == (3, 1, 1001)
    np.testing.assert_allclose(out["image"][1].numpy(), expected_window(HU, 1800, 400)[0], atol=1e-6)
    single = CTWindowd("image", window="abdomen")(data)["image"]
    np.testing.assert_allclose(single.numpy(), expected_window(HU, 400, 40), atol=1e-6)


def test_bad_windows_and_inputs():
    with pytest.raises(ValueError, match="Unknown CT window 'liverr'"):
        CTWindow("liverr")
    with pytest.raises(ValueError, match="width > 0"):
        CTWindow((0.0, 40.0))
    with pytest.raises(ValueError, match="non-empty list"):
        CTMultiWindow("lung")
    img = MetaTensor(torch.zeros(3, 4, 4), meta={"filename_or_obj": "rgb.png"})
    with pytest.raises(ValueError, match="one channel .* in 'rgb.png'"):
        CTMultiWindow()(img)


def test_ct_preset_is_the_multi_window_stack():
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1200, 1500, size=(1, 16, 16))
    out = load_preset("ct", "eval", image_size=16)({"image": torch.tensor(hu, dtype=torch.float32)})["image"]
    expected = np.concatenate([expected_window(hu, *CT_WINDOWS[n]) for n in ("lung", "mediastinum", "bone")])
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5)
    brain_preset = load_preset("ct", "eval", image_size=16, windows=["brain"])
    brain = brain_preset({"image": torch.tensor(hu, dtype=torch.float32)})
    np.testing.assert_allclose(np.asarray(brain["image"]), np.repeat(expected_window(hu, 80, 40), 3, 0), atol=1e-5)
    # 8-bit, already windowed CT images (COVID-CT): plain 0-255 scaling
    u8 = rng.integers(0, 256, size=(1, 16, 16)).astype(np.float32)
    out8 = load_preset("ct", "eval", image_size=16, intensity="@intensity_8bit")({"image": torch.tensor(u8)})["image"]
    np.testing.assert_allclose(np.asarray(out8), np.repeat(u8 / 255.0, 3, 0), atol=1e-6)
    with pytest.raises(ValueError, match="1 window .* or 3 windows, got 2"):
        load_preset("ct", "eval", windows=["lung", "bone"])
    with pytest.raises(ValueError, match="Unknown CT window 'lungs'"):
        load_preset("ct", "eval", windows=["lungs", "bone", "brain"])

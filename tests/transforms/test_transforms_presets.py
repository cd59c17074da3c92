"""Modality presets: every preset builds and runs, from any working directory and after a non-editable install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from monai.transforms import Compose, Randomizable

from monai_rd.transforms import MODALITIES, STAGES, VOLUME_MODALITIES, load_preset, preset_path, presets_dir
from tests.helpers import REPO


# loads every preset in a fresh interpreter and prints what it produced, as JSON
CHECK_ALL = textwrap.dedent(
    """
    import json, torch, monai_rd
    from monai_rd.transforms import MODALITIES, load_preset, presets_dir
    out = {"file": monai_rd.__file__, "presets_dir": str(presets_dir()), "shapes": {}}
    for m in MODALITIES:
        for s in ("train", "eval"):
            y = load_preset(m, s, image_size=24)({"image": torch.rand(1, 40, 30) * 255})["image"]
            out["shapes"][m + "/" + s] = list(y.shape)
    print(json.dumps(out))
    """
)


def _fake_image(modality: str) -> torch.Tensor:
    """A channel-first image in the value range the modality's files really hold."""
    g = torch.Generator().manual_seed(0)
    if modality == "ct":
        return torch.rand(1, 48, 40, generator=g) * 2000 - 1000  # HU
    if modality == "mri":
        return torch.rand(1, 48, 40, generator=g) * 3000  # scanner units
    if modality == "xray":
        return torch.rand(1, 48, 40, generator=g) * 4095  # 12-bit
    if modality == "dermoscopy":
        return torch.rand(3, 48, 40, generator=g) * 255
    return torch.rand(1, 48, 40, generator=g) * 255


def test_every_preset_file_defines_both_stages():
    assert sorted(os.listdir(os.path.join(REPO, "transforms"))) == sorted(
        f"{m}.json" for m in MODALITIES + VOLUME_MODALITIES
    )
    for m in MODALITIES:
        with open(os.path.join(REPO, "transforms", f"{m}.json"), encoding="utf-8") as f:
            config = json.load(f)
        for key in ("image_size", "keys", *STAGES):
            assert key in config, f"{m}.json lacks {key!r}"
        assert config["image_size"] == 224 and config["keys"] == "image"


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("stage", STAGES)
def test_preset_output_shape_and_range(modality, stage):
    pipeline = load_preset(modality, stage, image_size=32)
    assert isinstance(pipeline, Compose)
    has_random = any(isinstance(t, Randomizable) for t in pipeline.flatten().transforms)
    assert has_random == (stage == "train"), "train presets augment, eval presets are deterministic"
    pipeline.set_random_state(seed=0)
    out = pipeline({"image": _fake_image(modality), "label": 1})
    image = out["image"]
    assert out["label"] == 1
    assert tuple(image.shape) == (3, 32, 32)
    assert image.dtype == torch.float32
    assert torch.isfinite(image).all()
    # intensity handling maps to [0, 1]; augmentations (contrast, bias field, speckle) may move values a little
    assert float(image.min()) >= -0.05 and float(image.max()) <= 1.3
    if stage == "eval":
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0 + 1e-6
        again = load_preset(modality, stage, image_size=32)({"image": _fake_image(modality)})["image"]
        np.testing.assert_array_equal(np.asarray(image), np.asarray(again))


def test_preset_keys_and_overrides():
    pipeline = load_preset("ultrasound", "eval", image_size=16, keys=["image", "mask"])
    out = pipeline({"image": torch.full((1, 20, 20), 255.0), "mask": torch.zeros(1, 20, 20)})
    assert out["image"].shape == (3, 16, 16) and out["mask"].shape == (3, 16, 16)
    np.testing.assert_allclose(np.asarray(out["image"]), 1.0, atol=1e-3)  # anti-aliasing edge
    # a 16-bit ultrasound export: override the intensity ceiling
    pipeline = load_preset("ultrasound", "eval", image_size=16, intensity_max=65535.0)
    out = pipeline({"image": torch.full((1, 20, 20), 65535.0)})
    np.testing.assert_allclose(np.asarray(out["image"]), 1.0, atol=1e-3)  # anti-aliasing edge


def test_preset_bad_arguments():
    with pytest.raises(ValueError, match="Unknown modality 'pet'"):
        load_preset("pet", "train")
    with pytest.raises(ValueError, match="Unknown stage 'test'"):
        load_preset("ct", "test")
    with pytest.raises(KeyError, match="no ids \\['not_an_id'\\]"):
        load_preset("ct", "eval", not_an_id=1)


@pytest.mark.slow
def test_presets_from_another_working_directory(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run(
        [sys.executable, "-c", CHECK_ALL], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["presets_dir"] == os.path.join(REPO, "transforms")
    assert all(shape == [3, 24, 24] for shape in result["shapes"].values()) and len(result["shapes"]) == 10


@pytest.mark.slow
def test_presets_after_non_editable_install(installed_package, tmp_path):
    """Load every preset from a wheel built from a copy of the source tree and installed into a temp dir."""
    target, env = installed_package
    shipped = target / "monai_rd" / "transforms" / "presets"
    assert sorted(p.name for p in shipped.iterdir()) == sorted(f"{m}.json" for m in MODALITIES + VOLUME_MODALITIES)
    for m in MODALITIES:  # the shipped copies are the top-level files, byte for byte
        with open(os.path.join(REPO, "transforms", f"{m}.json"), "rb") as f:
            assert (shipped / f"{m}.json").read_bytes() == f.read()
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", CHECK_ALL], cwd=run_dir, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(target)), f"imported {result['file']}, not the installed copy"
    assert result["presets_dir"] == str(shipped)
    assert all(shape == [3, 24, 24] for shape in result["shapes"].values()) and len(result["shapes"]) == 10


def test_presets_dir_in_source_checkout():
    assert str(presets_dir()) == os.path.join(REPO, "transforms")
    assert preset_path("ct") == os.path.join(REPO, "transforms", "ct.json")

"""A modality preset inside a real bundle run: rd_busi with its preprocessing replaced by the ultrasound preset."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import BUNDLES, run_bundle

LOAD = {
    "_target_": "LoadImaged",
    "keys": "image",
    "reader": "PILReader",
    "reverse_indexing": False,
    "image_only": True,
    "ensure_channel_first": True,
}
TYPED = {"_target_": "EnsureTyped", "keys": ["image", "label"]}


def preset_override(stage: str) -> dict:
    return {
        "_target_": "Compose",
        "transforms": [
            LOAD,
            f"$monai_rd.transforms.load_preset('ultrasound', '{stage}', image_size=@image_size)",
            TYPED,
        ],
    }


@pytest.mark.slow
def test_rd_busi_trains_with_the_ultrasound_preset(busi_dir, tmp_path):
    override = tmp_path / "preset.json"
    override.write_text(
        json.dumps(
            {"train::preprocessing": preset_override("train"), "validate::preprocessing": preset_override("eval")}
        )
    )
    out = tmp_path / "out"
    run_bundle(
        [os.path.join(BUNDLES, "rd_busi", "configs", "train.json"), str(override)],
        dataset_dir=busi_dir,
        output_dir=out,
        max_epochs=1,
        image_size=32,
        batch_size=8,
        num_workers=0,
        teacher="torchvision:resnet18",
        teacher_weights="random",
        student="resnet18",
        progress_bar=False,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert (out / "model.pt").is_file()

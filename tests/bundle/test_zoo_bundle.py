"""rd_busi selects a zoo teacher by name: ``--teacher pmc_clip_rn50 --teacher_weights checkpoint.pt``."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tests.conftest import run_bundle
from monai_rd.networks.zoo.pmc_clip import ModifiedResNet


@pytest.mark.slow
def test_rd_busi_with_pmc_clip_checkpoint(busi_dir, tmp_path):
    torch.manual_seed(0)
    visual = ModifiedResNet([3, 4, 6, 3], output_dim=768, heads=32, image_size=224, width=64)  # the real layout
    state = {f"module.visual.{k}": v for k, v in visual.state_dict().items()}
    state["module.logit_scale"] = torch.tensor(2.659)
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 1, "state_dict": state}, ckpt)
    out = tmp_path / "out"
    run_bundle(
        "bundles/rd_busi/configs/train.json",
        dataset_dir=busi_dir,
        output_dir=out,
        teacher="pmc_clip_rn50",
        teacher_weights=ckpt,
        max_epochs=1,
        image_size=32,
        batch_size=8,
        num_workers=0,
        progress_bar=False,
    )
    executed = json.loads((out / "executed_config.json").read_text())
    assert "pmc_clip_rn50" in json.dumps(executed)
    assert any(name.endswith(".pt") and name != "datalist.json" for name in os.listdir(out))

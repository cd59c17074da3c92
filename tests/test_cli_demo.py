"""`monai-rd demo`: synthetic BUSI-layout data and the real rd_busi bundle, as a newcomer would run it."""

import os
import subprocess

import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # every test here runs a bundle or a server end to end


def test_demo_runs_the_bundle(tmp_path):
    proc = subprocess.run(
        ["monai-rd", "demo", "--workdir", str(tmp_path / "demo"), "--images_per_class", "6", "--image_size", "32",
         "--max_epochs", "1", "--teacher", "torchvision:resnet18"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    root = tmp_path / "demo" / "data" / "Dataset_BUSI_with_GT"
    for name in ("benign", "malignant", "normal"):
        files = sorted(os.listdir(root / name))
        assert f"{name} (1).png" in files and f"{name} (1)_mask.png" in files
        assert Image.open(root / name / f"{name} (1).png").size == (32, 32)
    assert (root / "benign" / "benign (5)_mask_1.png").exists()
    assert (tmp_path / "demo" / "outputs" / "model.pt").exists()
    assert (tmp_path / "demo" / "outputs" / "mlruns.db").exists()
    assert "Best student checkpoint" in proc.stdout

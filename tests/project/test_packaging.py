"""After a non-editable install the bundles come with the package, and the README's commands run from any folder."""

import csv
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from monai_rd.bundle import bundle_names


def _run(args, cwd, env, timeout=900):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.slow
def test_the_bundles_are_installed_with_the_package(installed_package, tmp_path):
    target, env = installed_package
    shipped = target / "monai_rd" / "bundles"
    for name in bundle_names():
        for config in ("train.json", "inference.json", "metadata.json"):
            with open(os.path.join(REPO, "bundles", name, "configs", config), "rb") as f:
                assert (shipped / name / "configs" / config).read_bytes() == f.read(), (name, config)
    path = _run([sys.executable, "-m", "monai_rd.cli", "bundle", "path", "rd_busi"], tmp_path, env).strip()
    assert path == str(shipped / "rd_busi")


@pytest.mark.slow
def test_readme_commands_from_a_temporary_folder(installed_package, busi_dir, tmp_path):
    """Train, evaluate and predict with the installed bundle, from a folder that is not the repository."""
    _, env = installed_package
    bundle = _run([sys.executable, "-m", "monai_rd.cli", "bundle", "path", "rd_busi"], tmp_path, env).strip()
    out = tmp_path / "run"
    train = [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"{bundle}/configs/train.json",
             "--dataset_dir", busi_dir, "--output_dir", str(out), "--max_epochs", "1", "--image_size", "32",
             "--batch_size", "8", "--num_workers", "0", "--progress_bar", "false", "--resume", "true",
             "--teacher", "torchvision:resnet18", "--teacher_weights", "random"]  # fmt: skip
    _run(train, tmp_path, env)
    assert (out / "model.pt").is_file()
    datalist = json.loads((out / "datalist.json").read_text())
    datalist.setdefault("test", datalist["validation"])  # until every indexer writes a test split
    (out / "datalist.json").write_text(json.dumps(datalist))
    evaluate = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
                f"['{bundle}/configs/train.json','{bundle}/configs/evaluate.json']", "--output_dir", str(out),
                "--num_workers", "0"]  # fmt: skip
    assert "Scored the 'test' split" in _run(evaluate, tmp_path, env)
    infer = [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"{bundle}/configs/inference.json",
             "--output_dir", str(out), "--input_dir", busi_dir, "--num_workers", "0"]  # fmt: skip
    _run(infer, tmp_path, env)
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 30 and all(r["file"].startswith(busi_dir) for r in rows)

"""A new user's first hour, through the real ``python -m monai.bundle run``: every mistake ends with the project's
own error on the last line, and a run that cannot train anything stops before it starts."""

import os
import re
import shutil
import sys

import pytest

from tests.helpers.forkserver import run as run_python
from tests.conftest import BUNDLES

TRAIN = os.path.join(BUNDLES, "rd_busi", "configs", "train.json")
TINY = dict(
    max_epochs=1,
    image_size=32,
    batch_size=8,
    num_workers=0,
    progress_bar="false",
    teacher="resnet50",
    teacher_weights="random",
)


def _run(tmp_path, **overrides):
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return run_python(cmd, cwd=tmp_path, timeout=600)


def _final_error(proc) -> str:
    """The block printed after the traceback: the error that stopped the bundle."""
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr  # the full traceback stays available above
    marker = "The error that stopped the bundle:"
    assert marker in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.rsplit(marker, 1)[1].strip()


def _truncated_busi(busi_dir, tmp_path):
    copy = shutil.copytree(busi_dir, tmp_path / "Dataset_BUSI_with_GT")
    victim = copy / "benign" / "benign (3).png"
    victim.write_bytes(victim.read_bytes()[:60])
    return copy, victim


@pytest.mark.slow
@pytest.mark.parametrize("mistake", ["mistyped id", "missing folder", "truncated png"])
def test_the_last_line_is_the_projects_own_error(mistake, busi_dir, tmp_path):
    out = tmp_path / "out"
    if mistake == "mistyped id":
        proc = _run(tmp_path, dataset_dir=busi_dir, output_dir=out, max_epoch=1, image_size=32, num_workers=0)
        expected, text = r"monai_rd\.bundle\.config_check\.ConfigError: unknown bundle id\(s\)", "--max_epochs"
    elif mistake == "missing folder":
        proc = _run(tmp_path, dataset_dir=tmp_path / "nowhere", output_dir=out, **TINY)
        expected, text = "FileNotFoundError: BUSI folder", "does not exist"  # a builtin: no module prefix
    else:
        folder, victim = _truncated_busi(busi_dir, tmp_path)
        proc = _run(tmp_path, dataset_dir=folder, output_dir=out, **TINY)
        expected, text = r"monai_rd\.data\.[\w.]+\.BadInputError:", victim.name  # data.checks after the merge
    final = _final_error(proc)
    assert re.match(expected, final), final
    assert text in final and "RuntimeError" not in final and "Failed to evaluate" not in final
    assert proc.stderr.rstrip().splitlines()[-1] in final  # nothing of MONAI's after it
    assert not (out / "model.pt").exists()


@pytest.mark.slow
def test_a_split_smaller_than_the_batch_stops_before_training(busi_dir, tmp_path):
    out = tmp_path / "out"
    proc = _run(tmp_path, dataset_dir=busi_dir, output_dir=out, **{**TINY, "batch_size": 32})
    final = _final_error(proc)
    match = re.match(r"monai_rd\.bundle\.config_check\.EmptyEpochError: the training split has (\d+) item\(s\), "
                     r"fewer than batch_size 32", final)  # fmt: skip
    assert match, final
    assert f"--batch_size {match.group(1)}" in final
    # nothing half-written: no checkpoint, no resume state, no MLflow run
    assert not (out.exists() and any(p.name.endswith(".pt") for p in out.iterdir()))
    assert not (out / "mlruns.db").exists()

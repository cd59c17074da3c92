"""`monai-rd demo`: a teacher pretrained once on a synthetic source modality, the real rd_busi bundle run
student-only and with RD, both scored on held-out images; both learn (far above chance, 33.3 %)."""

import json
import os
import pathlib
import re
import subprocess

import pytest
from PIL import Image
from tests.helpers import REPO

pytestmark = pytest.mark.slow  # every test here runs a bundle or a server end to end


def _demo(workdir, *extra):
    # the figures below were measured with two torch threads; one thread changes the float reduction order and,
    # with 40 images per class, the trajectory (76.7 / 87.8 % on the same seed, docs/teachers.md)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["monai-rd", "demo", "--workdir", str(workdir), *extra],
                          capture_output=True, text=True, timeout=3000, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _accuracies(stdout):
    return {name: float(v) for name, v in re.findall(r"^\s+(student_only|rd)\s+([0-9.]+)%", stdout, re.M)}


@pytest.mark.slow
def test_demo_learns_and_reuses_its_source_teacher(tmp_path):
    workdir = tmp_path / "demo"
    out = _demo(workdir)  # the documented defaults, seed 0
    teacher = workdir / "teacher" / "source_teacher_resnet18.pt"
    assert "pretrained now" in out and teacher.exists()
    acc = _accuracies(out)
    assert set(acc) == {"student_only", "rd"}, out[-2000:]
    # measured on seed 0 (docs/teachers.md): student alone 92.2 %, RD 70.0 % with the demo's source teacher (86.3 %
    # on its 6 source classes); another 2-core machine gave 78.9 / 72.2 % on the same seed (CPU kernels differ).
    # RD below the student alone is issue 18's open problem; the demo must still show learning in both runs, far
    # above chance (33.3 %)
    assert acc["student_only"] >= 70.0 and acc["rd"] >= 60.0, out[-2000:]
    # the README's figures (benchmarks/results/demo_busi_seed0.json) are a run of these defaults on another machine:
    # the CPU's float kernels move one seed by about 10-15 points (92.2 / 70.0 % vs 78.9 / 72.2 % on two machines)
    record = json.loads((pathlib.Path(REPO) / "benchmarks" / "results" / "demo_busi_seed0.json")
                        .read_text())["runs"]  # fmt: skip
    for name in ("student_only", "rd"):
        assert abs(acc[name] - 100 * record[name]["accuracy"]) <= 15.0, (name, acc, out[-2000:])
    results = json.loads((workdir / "demo_results.json").read_text())
    assert results["runs"]["rd"]["n"] >= 80  # 30 held-out images per class
    assert results["teacher"]["source_accuracy"] > 0.7  # 6 source classes: chance is 1/6
    root = workdir / "data" / "Dataset_BUSI_with_GT"
    for name in ("benign", "malignant", "normal"):
        assert (root / name / f"{name} (1).png").exists() and (root / name / f"{name} (1)_mask.png").exists()
        assert Image.open(root / name / f"{name} (1).png").size == (48, 48)
    assert (workdir / "outputs" / "model.pt").exists() and (workdir / "outputs" / "mlruns.db").exists()
    assert (workdir / "outputs_student_only" / "model.pt").exists()
    assert f"--teacher_weights {teacher}" in out
    # progress through the teacher's pretraining (a line per epoch with the time left), and the RD run's next steps
    assert re.search(r"^teacher pretraining \(resnet18, 1200 source images\) epoch 1/8: .* about .* left$", out, re.M)
    assert "training epoch 15/15: " in out and "Predictions" not in out
    assert f"Best student (deployable, no teacher): {workdir / 'outputs' / 'model.pt'}" in out
    assert "MLflow run " in out and "mlflow models serve -m models:/rd_busi_student/1 " in out
    assert f"--input_dir {workdir / 'heldout' / 'Dataset_BUSI_with_GT'}" in out

    mtime = os.path.getmtime(teacher)
    again = _demo(workdir, "--max_epochs", "1", "--images_per_class", "8", "--heldout_per_class", "4")
    assert "reused from an earlier run" in again and os.path.getmtime(teacher) == mtime
    assert set(_accuracies(again)) == {"student_only", "rd"}

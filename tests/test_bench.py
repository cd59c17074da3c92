"""Smoke test of ``monai-rd bench`` with tiny settings: it runs end to end and reports the four ratios (not timed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every test here runs a bundle or a server end to end

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_benchmark_runs_and_reports_ratios(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "cache_benchmark.py"), "--teacher", "torchvision:resnet18",
           "--image_size", "32", "--images_per_class", "4", "--batch_size", "4", "--views", "2", "--epochs", "1",
           "--threads", "1", "--workdir", str(tmp_path / "w"), "--json_out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("a_cached_rd_epoch_over_student_epoch", "b_teacher_rd_epoch_over_cached_rd_epoch",
                 "c_cached_rd_peak_rss_over_student_peak_rss", "d_build_throughput_over_teacher_forward"):
        assert name in proc.stdout
    result = json.load(open(out))
    assert set(result["epoch_s"]) == {"student", "cached_rd", "teacher_rd"}
    assert all(v > 0 for pair in result["ratios"].values() for v in pair)
    assert result["memory_mib"]["student"]["peak_mib"] >= result["memory_mib"]["student"]["baseline_mib"] > 0

"""``monai-rd bench`` and ``benchmarks/gpu.sh``: FLOP counts against published figures, argument handling, the CUDA
refusal on a machine without one, and (slow) one tiny end-to-end CPU run. Nothing here is timed."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

from monai_rd.cli import bench as bench_cli
from monai_rd.experiments.bench import GOALS, flop_bound, rd_flops
from monai_rd.networks import build_teacher
from tests.helpers import REPO

ENV = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
NO_CUDA = not torch.cuda.is_available()


def _parse(*argv):
    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flop_counts_match_published_figures():
    """ResNet-18 at 224 px: 1.81 GMACs (torchvision's model card) = 3.63 GFLOPs forward, less its 1000-way fc."""
    teacher = build_teacher("torchvision:resnet18")
    flops = rd_flops(teacher, "resnet18", teacher.feature_shape, image_size=224, batch_size=2)
    assert flops["T_fwd"] == pytest.approx(2 * (1.814e9 - 512 * 1000), rel=0.01)
    # the student's step: forward (same backbone + a 3-way head) and a backward of about twice the forward
    forward = 2 * (1.814e9 - 512 * 1000 + 512 * 3)
    assert 2.5 * forward < flops["S_train"] < 3.0 * forward
    # RD from the cache adds g and the second head pass: more than S alone, and g is bounded by the student's size
    assert flops["S_train"] < flops["SG_train"] < 1.1 * flops["S_train"]
    assert flops["bound_a"] == pytest.approx(flops["SG_train"] / flops["S_train"])
    assert flops["bound_b"] == pytest.approx((flops["T_fwd"] + flops["SG_train"]) / flops["SG_train"])
    assert flop_bound(3.0, 1.0) == 4.0
    assert GOALS["a"] == {"resnet18": 1.05, "mobilenet_v3_small": 1.10} and GOALS["d"] == 0.95


def test_argument_defaults_and_validation():
    args = _parse()
    assert args.teachers == ["resnet50", "lvmmed_vit_b"]
    assert args.students == ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0"]
    assert args.device == "cpu" and args.amp == "none" and not args.channels_last and args.num_workers == 0
    assert args.build_workers is None and args.teacher_batch_size == 32
    assert _parse("--num_workers", "auto").num_workers is None and _parse("--num_workers", "3").num_workers == 3
    for bad in (["--num_workers", "-1"], ["--batch_size", "0"], ["--amp", "fp8"]):
        with pytest.raises(SystemExit):
            _parse(*bad)


@pytest.mark.skipif(not NO_CUDA, reason="checks the refusal on a machine without CUDA")
def test_cuda_is_refused_clearly_without_a_gpu():
    proc = subprocess.run([sys.executable, "-m", "monai_rd.cli", "bench", "--device", "cuda"], capture_output=True,
                          text=True, env=ENV, timeout=300)  # fmt: skip
    assert proc.returncode != 0 and "CUDA is not available" in proc.stderr and "--device cpu" in proc.stderr
    gpu = subprocess.run(["bash", os.path.join(REPO, "benchmarks", "gpu.sh")], capture_output=True, text=True,
                         env={**ENV, "OUT_DIR": "/nonexistent/never_created"}, timeout=300)  # fmt: skip
    assert gpu.returncode == 2 and "CUDA is not available" in gpu.stderr and "nothing measured" in gpu.stderr
    assert not os.path.exists("/nonexistent/never_created")


def test_nccl_check_needs_torchrun(monkeypatch):
    from monai_rd.experiments.bench import nccl_check

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(SystemExit, match="torchrun"):
        nccl_check(_parse("--nccl_check"))


@pytest.mark.slow
def test_benchmark_runs_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "cache_benchmark.py"), "--teachers",
           "torchvision:resnet18", "--students", "mobilenet_v3_small", "--image_size", "32", "--images_per_class", "4",
           "--batch_size", "4", "--teacher_batch_size", "8", "--views", "2", "--epochs", "1", "--threads", "1",
           "--workdir", str(tmp_path / "w"), "--json_out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for text in ("(a) cached RD epoch", "(d) cache build", "(c) peak RSS", "FLOP bnd", "meas/bnd"):
        assert text in proc.stdout, text
    result = json.load(open(out))
    (pair,) = result["pairs"]
    assert set(pair["epoch_s"]) == {"student", "cached_rd", "teacher_rd"}
    assert all(v > 0 for mode in pair["img_s"].values() for v in mode)
    assert pair["b_fraction_of_bound"][0] == pytest.approx(pair["b_speedup"][0] / pair["flops"]["bound_b"])
    mem = result["memory"]["mobilenet_v3_small"]
    assert mem["student"]["peak_mib"] >= mem["student"]["baseline_mib"] > 0

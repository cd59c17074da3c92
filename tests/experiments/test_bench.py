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
    cmd = [sys.executable, "-m", "monai_rd.cli", "bench", "--teachers",
           "torchvision:resnet18", "--students", "mobilenet_v3_small", "--image_size", "32", "--images_per_class", "4",
           "--batch_size", "4", "--teacher_batch_size", "8", "--views", "2", "--epochs", "1", "--threads", "1",
           "--build_min_time", "0.1", "--workdir", str(tmp_path / "w"), "--json_out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for text in ("(a) cached RD / student-only", "(d) cache build", "(c) peak RSS", "FLOP bnd", "meas/bnd",
                 "breakdown of one steady-state step", "sum of parts", "feature-cache reads"):  # fmt: skip
        assert text in proc.stdout, text
    result = json.load(open(out))
    (pair,) = result["pairs"]
    assert set(pair["steady"]) == {"student", "cached_rd", "teacher_rd"}
    for steady in pair["steady"].values():  # the breakdown reconciles with the measured steps within 1 %
        for i in (0, 1):
            assert steady["sum_of_parts_ms_per_step"][i] == pytest.approx(steady["total_ms_per_step"][i], rel=0.01)
    assert all(v > 0 for mode in pair["img_s"].values() for v in mode)
    assert pair["b_fraction_of_bound"][0] == pytest.approx(pair["b_speedup"][0] / pair["flops"]["bound_b"])
    kept = pair["steady"]["cached_rd"]["view_cache"]
    assert kept["kept"] == kept["views"] == 6 * 2  # timed with every served view kept: 6 training images x 2 views
    built = result["teachers"]["torchvision:resnet18"]
    assert built["build_images"] == 6 * built["build_views"] and built["build_views"] >= 2
    assert len(built["d_build_over_forward"]) == len(built["d_whole_build_over_forward"]) == 2
    mem = result["memory"]["mobilenet_v3_small"]
    assert mem["student"]["peak_mib"] >= mem["student"]["baseline_mib"] > 0


def _tiny_trainer(n_items: int = 8, batch: int = 2):
    from monai.engines import SupervisedTrainer

    from monai_rd.experiments.bench import MAX_EPOCHS

    torch.manual_seed(0)
    data = [{"image": torch.rand(4), "label": torch.tensor(i % 2)} for i in range(n_items)]
    loader = torch.utils.data.DataLoader(data, batch_size=batch)
    net = torch.nn.Linear(4, 2)
    return SupervisedTrainer(device=torch.device("cpu"), max_epochs=MAX_EPOCHS, train_data_loader=loader, network=net,
                             optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
                             loss_function=torch.nn.CrossEntropyLoss())  # fmt: skip


class _FakeClock:
    """Each reading advances 10 s (wall and CPU) while ``slow`` is set, 1 s after; 1/4 of the process CPU is spent
    by another thread."""

    def __init__(self):
        self.t, self.slow = 0.0, True

    def __call__(self):
        self.t += 10.0 if self.slow else 1.0
        return self.t, 0.75 * self.t, self.t


def test_steady_state_excludes_the_warm_up_with_a_fake_clock():
    """The first epoch (and --warmup_steps more) is 10x slower; the steady-state rate is that of the fast steps
    only, exactly, and the engine stops once the windows are measured."""
    from ignite.engine import Events

    from monai_rd.experiments.bench_timing import PARTS, StepTimer, steady_state

    engine, clock = _tiny_trainer(), _FakeClock()
    timer = StepTimer(engine, warmup_steps=2, repeats=3, min_steps=2, clock=clock)
    # slow: all of epoch 1 (4 steps) and the first 2 steps of epoch 2 (the extra warm-up); each step reads 8 stamps
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: setattr(clock, "slow", e.state.iteration < 6))
    engine.run()
    measured = timer.measured()
    assert len(measured) == 6 and engine.state.epoch == 4  # 3 windows x 2 steps after 4 + 2 warm-up steps
    assert all(st["epoch"] >= 2 for st in measured) and len(timer.steps) == 12
    out = steady_state(measured, batch_size=2, repeats=3, min_steps=2)
    # a steady step reads the clock 8 times (1 s each): 2 images / 8 s; CPU: 8 s of process time
    assert out["img_s"] == [pytest.approx(0.25), pytest.approx(0.25)] and out["windows"] == 3
    assert out["img_s_spread"] == [[pytest.approx(0.25)] * 2] * 2
    br = out["breakdown_ms_per_step"]
    for part in ("batch_wait", "forward", "loss", "backward", "optimizer"):
        assert br[part][0] == pytest.approx(1000.0)
    assert br["engine"][0] == pytest.approx(3000.0)  # 3 spans: before ITERATION_STARTED, after MODEL_COMPLETED, gap
    assert br["loader_thread"][1] == pytest.approx(2000.0)  # a quarter of the 8 s of process CPU
    assert out["sum_of_parts_ms_per_step"] == [pytest.approx(v) for v in out["total_ms_per_step"]]
    assert set(PARTS) < set(br)
    # without excluding the warm-up the rate would be different: the test can fail
    everything = steady_state(timer.steps, batch_size=2, repeats=6, min_steps=2)
    assert everything["img_s"][0] < 0.25


def test_steady_build_rate_by_hand():
    """(d)'s rate from per-batch stamps: steady = images after the first batch over first-to-last end; whole = all
    images from the start. Hand values: batches of 8, 8, 4 ending at 5, 7, 8 s wall (CPU 4, 6, 7), started at 1 s."""
    from monai_rd.experiments.bench import steady_rate

    stamps = [((5.0, 4.0), 8), ((7.0, 6.0), 8), ((8.0, 7.0), 4)]
    assert steady_rate(stamps) == [pytest.approx(12 / 3), pytest.approx(12 / 3)]
    assert steady_rate(stamps, start=(1.0, 0.5)) == [pytest.approx(20 / 7), pytest.approx(20 / 6.5)]
    with pytest.raises(ValueError, match="at least 2 batches"):
        steady_rate(stamps[:1])


def test_build_views_cover_a_batch_and_the_minimum_time():
    from monai_rd.experiments.bench import _build_views

    args = argparse.Namespace(teacher_batch_size=32, views=2, build_min_time=3.0)
    assert _build_views(args, per_image_s=0.022, items=24) == 8  # 32 + ceil(3 / 0.022) = 169 images: 8 views of 24
    assert _build_views(args, per_image_s=1.4, items=24) == 3  # 32 + 32 (a batch beyond the first): 3 views
    assert _build_views(args, per_image_s=1.4, items=500) == 2  # never fewer than --views
    assert _parse().build_min_time == 3.0


def test_step_breakdown_sums_to_the_measured_step_on_a_real_engine():
    """On a real MONAI trainer and clock: every part is timed, the parts add up to the steps' own totals within 1 %,
    and the steps fit within the run's wall time measured outside the engine."""
    import time

    from monai_rd.experiments.bench_timing import PARTS, StepTimer, steady_state

    engine = _tiny_trainer()
    timer = StepTimer(engine, warmup_steps=1, repeats=2, min_steps=3)
    t0 = time.perf_counter()
    engine.run()
    outer = time.perf_counter() - t0
    out = steady_state(timer.measured(), batch_size=2, repeats=2, min_steps=3)
    assert out["steps"] == 6 and out["windows"] == 2
    total, parts = out["total_ms_per_step"], out["sum_of_parts_ms_per_step"]
    for i in (0, 1):
        assert parts[i] == pytest.approx(total[i], rel=0.01)
    assert all(out["breakdown_ms_per_step"][p][0] > 0 for p in PARTS)
    assert sum(st["wall"] for st in timer.steps) <= outer
    assert out["img_s_spread"][0][0] <= out["img_s"][0] <= out["img_s_spread"][0][1]


def test_gpu_script_asks_for_the_steady_state_table():
    """benchmarks/gpu.sh's common options parse with monai-rd bench's parser and ask for steady-state windows (the
    table and breakdown printed on the CPU are printed there too); it cannot run here without CUDA."""
    import re
    import shlex

    text = open(os.path.join(REPO, "benchmarks", "gpu.sh")).read()
    common = re.search(r"COMMON=\((.*?)\)\n", text, re.S).group(1)
    common = (
        common.replace('"$WORK"', "/tmp/w")
        .replace("$TEACHERS", "resnet50 lvmmed_vit_b")
        .replace("$STUDENTS", "resnet18 mobilenet_v3_small")
    )
    args = _parse(*shlex.split(common))
    assert args.device == "cuda" and args.repeats >= 3 and args.min_steps >= 8 and args.min_time > 0
    assert args.build_repeats >= 3 and args.teachers == ["resnet50", "lvmmed_vit_b"]
    assert 0 < args.build_min_time < 3  # steady (d) without stacking thousands of 224 px views in memory

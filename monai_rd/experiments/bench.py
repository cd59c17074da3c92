"""Measure, side by side in one run, what the teacher-feature cache buys on this machine.

Four ratios, on a fabricated BUSI-layout set with the rd_busi bundle's own training transforms:

(a) RD epoch from a warm cache / student-only epoch            (goal <= 1.2)
(b) RD epoch with the teacher in the loop / RD from a warm cache (expected >= 3)
(c) peak RSS of RD from the cache / peak RSS of student-only     (goal <= 1.3), each measured in its own
    fresh subprocess as ``VmHWM`` (/proc/self/status) after one training epoch; also shown: the growth of
    the peak over the RSS right after imports and data indexing, which isolates training memory
(d) cache-build throughput / pure teacher forward throughput     (goal >= 0.9), images per second; the
    pure forward runs on the same view images already in memory, the build includes reading, augmenting,
    the teacher and the atomic chunk writes.

Epoch times are the median of ``--epochs`` timed epochs after one untimed warm-up epoch, all engines
with ``num_workers=0`` and the same batch size, in this process one after the other. Each time is taken
both as wall-clock and as this process's CPU time (``time.process_time``): on a shared machine the
CPU time is the steadier measure of the work done (use ``--threads 1`` so that it is not inflated by
idle OpenMP threads spinning).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

def _proc_status_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from /proc/self/status, in MiB.

    ``VmHWM`` is reset by ``execve`` (unlike ``ru_maxrss``, which a child inherits from a larger parent).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # fallback (Linux: KiB)


def _setup(args, workdir: str) -> dict:
    from monai.bundle import ConfigParser

    from monai_rd.bundle import bundle_root
    from monai_rd.data import index_busi, make_busi_like

    data_dir = os.path.join(workdir, "data", "Dataset_BUSI_with_GT")
    if not os.path.isdir(data_dir):
        make_busi_like(os.path.join(workdir, "data"), n_per_class=args.images_per_class, size=args.image_size, seed=0)
    datalist = index_busi(data_dir, val_fraction=0.2, seed=0)
    parser = ConfigParser()
    parser.read_config(os.path.join(bundle_root("rd_busi"), "configs", "train.json"))
    parser.update({"image_size": args.image_size, "dataset_dir": data_dir})
    return {
        "train": datalist["training"],
        "transform": lambda: parser.get_parsed_content("train::preprocessing", lazy=False),
        "cache_dir": os.path.join(workdir, "cache", "training"),
    }


def _loader(dataset, batch_size):
    import torch
    from monai.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip


def _engine(mode: str, args, env: dict, teacher=None):
    """A trainer for ``mode`` in (student, cached_rd, teacher_rd) on the fabricated training split."""
    import torch
    from monai.data import Dataset
    from monai.engines import SupervisedTrainer

    from monai_rd.data import CachedFeatureDataset
    from monai_rd.engines import RDTrainer
    from monai_rd.losses import RDLoss
    from monai_rd.networks import RDNet, StudentClassifier

    torch.manual_seed(0)
    student = StudentClassifier(args.student, num_classes=3)
    cpu = torch.device("cpu")
    max_epochs = 1 + args.epochs
    if mode == "student":
        loader = _loader(Dataset(env["train"], env["transform"]()), args.batch_size)
        opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
        return SupervisedTrainer(device=cpu, max_epochs=max_epochs, train_data_loader=loader, network=student,
                                 optimizer=opt, loss_function=torch.nn.CrossEntropyLoss())  # fmt: skip
    if mode == "cached_rd":
        ds = CachedFeatureDataset(env["train"], env["transform"](), env["cache_dir"], args.teacher)
        net = RDNet(None, student, teacher_feature_shape=ds.cache.feature_shape)
    elif mode == "teacher_rd":
        ds = Dataset(env["train"], env["transform"]())
        net = RDNet(teacher, student)
    else:
        raise ValueError(mode)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    return RDTrainer(device=cpu, max_epochs=max_epochs, train_data_loader=_loader(ds, args.batch_size), network=net,
                     optimizer=opt, loss_function=RDLoss())  # fmt: skip


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> tuple[float, float]:
    t1 = _clock()
    return t1[0] - t0[0], t1[1] - t0[1]


def _epoch_times(engine) -> list[tuple[float, float]]:
    """(wall, cpu) seconds of each epoch but the first (a warm-up)."""
    from ignite.engine import Events

    times: list[tuple[float, float]] = []
    start = {}
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: start.__setitem__("t", _clock()))
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: times.append(_since(start["t"])))
    engine.run()
    return times[1:]


def _memory_worker(args) -> int:
    """Child process: one warm-up-free training epoch of ``args.memory_worker``; prints JSON with peak RSS."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    env = _setup(args, args.workdir)
    baseline = _proc_status_mib("VmRSS")  # interpreter + torch + MONAI imported, data indexed
    args.epochs = 0  # max_epochs = 1
    engine = _engine(args.memory_worker, args, env)
    engine.run()
    print(json.dumps({"mode": args.memory_worker, "baseline_mib": baseline, "peak_mib": _proc_status_mib("VmHWM")}))
    return 0


def _peak_rss(mode: str, args) -> dict:
    cmd = [sys.executable, "-m", "monai_rd.cli", "bench", "--memory_worker", mode, "--workdir", args.workdir,
           "--teacher", args.teacher, "--student", args.student, "--image_size", str(args.image_size),
           "--images_per_class", str(args.images_per_class), "--batch_size", str(args.batch_size)]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker {mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def run_benchmark(args: argparse.Namespace) -> int:
    """Run the benchmark described in the module docstring with the options of ``monai-rd bench``."""
    if args.memory_worker:
        return _memory_worker(args)
    import torch

    from monai_rd.data import FeatureCache
    from monai_rd.data.feature_cache import apply_view, item_id, view_seed
    from monai_rd.networks import build_teacher

    if not 16 <= args.image_size <= 224:
        raise SystemExit("--image_size must be in [16, 224].")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="rd_bench_"))
    env = _setup(args, args.workdir)
    n, k = len(env["train"]), args.views
    print(f"monai-rd bench: teacher {args.teacher}, student {args.student}, {args.image_size} px, {n} training "
          f"images x {k} views, batch {args.batch_size}, torch threads {torch.get_num_threads()}, "
          f"workdir {args.workdir}", flush=True)  # fmt: skip
    torch.manual_seed(0)
    teacher = build_teacher(args.teacher)

    # (d) pure teacher forward on the same view images held in memory, then the cache build
    transform = env["transform"]()
    images = torch.stack([
        apply_view(transform, item, view_seed(item_id(item), v))["image"].as_subclass(torch.Tensor)
        for item in env["train"] for v in range(k)
    ])  # fmt: skip
    with torch.no_grad():
        teacher(images[: args.batch_size])  # warm-up
        t0 = _clock()
        for s in range(0, len(images), args.batch_size):
            teacher(images[s : s + args.batch_size])
        pure = [len(images) / t for t in _since(t0)]
    cache = FeatureCache(env["cache_dir"], env["train"], env["transform"](), args.teacher)
    if os.path.isdir(env["cache_dir"]):
        import shutil

        shutil.rmtree(env["cache_dir"])
    t0 = _clock()
    cache.build(teacher, views=k, dtype=args.dtype, batch_size=args.batch_size, progress=False)
    build = [n * k / t for t in _since(t0)]
    print(f"teacher forward {pure[0]:.2f} img/s wall ({pure[1]:.2f} per CPU s), cache build {build[0]:.2f} img/s "
          f"wall ({build[1]:.2f} per CPU s)", flush=True)  # fmt: skip

    # (a), (b) epoch times, one mode after the other in this process
    epochs = {}
    for mode in ("student", "cached_rd", "teacher_rd"):
        times = _epoch_times(_engine(mode, args, env, teacher=teacher))
        epochs[mode] = [statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)]
        print(f"{mode:>10}: epoch {epochs[mode][0]:.2f} s wall, {epochs[mode][1]:.2f} s CPU", flush=True)

    # (c) peak memory, each in a fresh subprocess
    mem = {mode: _peak_rss(mode, args) for mode in ("student", "cached_rd")}
    for mode, m in mem.items():
        print(f"{mode:>10}: peak RSS {m['peak_mib']:.0f} MiB (after imports {m['baseline_mib']:.0f} MiB)", flush=True)

    def growth(m):
        return m["peak_mib"] - m["baseline_mib"]

    c_peak = mem["cached_rd"]["peak_mib"] / mem["student"]["peak_mib"]
    c_growth = growth(mem["cached_rd"]) / max(growth(mem["student"]), 1e-9)
    ratios = {  # name -> [wall-clock ratio, CPU-time ratio]
        "a_cached_rd_epoch_over_student_epoch": [epochs["cached_rd"][i] / epochs["student"][i] for i in (0, 1)],
        "b_teacher_rd_epoch_over_cached_rd_epoch": [epochs["teacher_rd"][i] / epochs["cached_rd"][i] for i in (0, 1)],
        "c_cached_rd_peak_rss_over_student_peak_rss": [c_peak, c_peak],
        "c_growth_over_imports_ratio": [c_growth, c_growth],
        "d_build_throughput_over_teacher_forward": [build[i] / pure[i] for i in (0, 1)],
    }
    goals = {"a": "<= 1.2", "b": ">= 3 (expected)", "c": "<= 1.3", "d": ">= 0.9"}
    print("\nratio                                           wall    CPU   goal")
    for name, (wall, cpu) in ratios.items():
        goal = goals[name[0]] if not name.startswith("c_growth") else "(peak minus post-import RSS)"
        if name.startswith("c_"):
            print(f"{name:<45} {wall:6.2f}      -   {goal}")
        else:
            print(f"{name:<45} {wall:6.2f} {cpu:6.2f}   {goal}")
    if args.json_out:
        from monai_rd.utils import atomic_write_json

        atomic_write_json(args.json_out, {"args": {k_: v for k_, v in vars(args).items() if k_ != "memory_worker"},
                                          "epoch_s": epochs, "teacher_forward_img_s": pure, "build_img_s": build,
                                          "memory_mib": mem, "ratios": ratios})  # fmt: skip
    return 0

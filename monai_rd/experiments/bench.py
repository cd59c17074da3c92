"""``monai-rd bench``: what RD costs on this machine, next to what it can cost at best (exact FLOP bounds).

On a fabricated BUSI-layout set with the rd_busi bundle's own training transforms, for every teacher x student
pair, measured side by side in one run:

- images/s of one training epoch in three modes, all with the same loader (:func:`monai_rd.data.make_dataloader`
  over the cached deterministic preprocessing) and batch size: ``student`` (student-only, cross-entropy),
  ``cached_rd`` (RD from a warm teacher-feature cache: ``g``, ``S``, ``h``) and ``teacher_rd`` (RD with the
  teacher in the loop);
- (a) cached RD epoch / student-only epoch, next to its FLOP bound ``(S_train + g_train) / S_train``;
- (b) teacher-in-the-loop RD epoch / cached RD epoch (the speed-up the cache buys), next to its FLOP bound
  ``(T_fwd + S_train + g_train) / (S_train + g_train)`` and the measured/bound fraction. FLOPs are exact counts
  of one training step by ``torch.utils.flop_counter.FlopCounterMode`` (forward and backward; matrix products
  and convolutions only, 2 per multiply-add), the teacher's forward by :func:`monai_rd.deploy.cost.count_flops`;
- (c) peak RSS of cached RD / peak RSS of student-only, each in its own fresh subprocess (``VmHWM`` after one
  epoch), on the CPU; on a GPU the peak GPU memory of every mode instead;
- (d) cache-build throughput / the teacher's pure forward throughput on the same images already in memory, with
  the same teacher batch (``--teacher_batch_size``, independent of the training batch), at steady state (batch by
  batch after the first, on at least ``--build_min_time`` seconds of teacher work: :func:`steady_rate`,
  :func:`_build_views`), the whole-run ratio next to it.

Images/s are steady-state figures (:mod:`monai_rd.experiments.bench_timing`): the real engine and loader run until,
after a warm-up (the whole first epoch plus ``--warmup_steps``), ``--repeats`` consecutive windows of at least
``--min_steps`` steps and ``--min_time`` CPU seconds (and ``--epochs`` epochs' steps in all) are measured; the
median over windows is reported with its min and max. Timestamps on the engine's events split every step into
waiting for the batch, forward, loss, backward, optimizer and engine/handlers (main thread), plus the CPU time of
the loader thread (reading, augmenting, cache reads); the parts sum to the measured step. Each is taken as wall
clock and as CPU time (``time.process_time``/``thread_time``): on a shared machine the CPU time is the steadier
measure of the work done (use ``--threads 1``); it does not count loader worker processes. On CUDA the device is
synchronised at every timestamp. The cached mode is timed with its served views all kept (as after a run's first
epochs). The goals are printed next to the figures (judged on CPU time on the CPU, wall time on a GPU; (d) always
on wall time, since the build's reading overlaps the teacher on another core); nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["GOALS", "run_benchmark", "rd_flops", "flop_bound", "check_device", "nccl_check"]

# goal per ratio, printed side by side with the measurement (issue 15)
GOALS = {
    "a": {"resnet18": 1.05, "mobilenet_v3_small": 1.10},  # cached RD epoch / student epoch <= goal
    "b": 0.8,  # measured in-loop/cached speed-up >= goal x FLOP bound
    "c": 1.1,  # peak RSS cached RD / student-only <= goal
    "d": 0.95,  # cache-build throughput / pure teacher forward >= goal
}
MODES = ("student", "cached_rd", "teacher_rd")
MAX_EPOCHS = 100_000  # the steady-state timer terminates the engine long before
AMP_DTYPES = {"none": None, "bf16": "bfloat16", "fp16": "float16"}


def check_device(device: str) -> None:
    """Refuse, naming what to do, a CUDA device on a machine without one."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"monai-rd bench --device {device}: CUDA is not available on this machine (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}). Run it on a machine with an NVIDIA GPU, or benchmark the CPU "
            "with --device cpu."
        )


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
    return {"train": datalist["training"],
            "transform": lambda: parser.get_parsed_content("train::preprocessing", lazy=False)}  # fmt: skip


def _cache_dir(workdir: str, teacher: str) -> str:
    return os.path.join(workdir, "cache", teacher.replace(":", "_").replace("/", "_"), "training")


def _amp(args) -> dict:
    import torch

    dtype = AMP_DTYPES[args.amp]
    return {"amp": dtype is not None, "amp_kwargs": {"dtype": getattr(torch, dtype)} if dtype else None}


def _engine(mode: str, student_name: str, args, env: dict, teacher=None, teacher_name: str = "", feature_shape=None):
    """A trainer for ``mode`` in :data:`MODES` on the fabricated training split, with its loader."""
    import torch
    from monai.engines import SupervisedTrainer

    from monai_rd.data import CachedFeatureDataset, make_dataloader, preprocessing_dataset
    from monai_rd.engines import RDTrainer
    from monai_rd.losses import RDLoss
    from monai_rd.networks import RDNet, StudentClassifier, prepare_network

    device = torch.device(args.device)
    torch.manual_seed(0)
    student = StudentClassifier(student_name, num_classes=3)
    if mode == "cached_rd":
        ds = CachedFeatureDataset(env["train"], env["transform"](), _cache_dir(args.workdir, teacher_name),
                                  teacher_name, preprocessing_cache="memory")  # fmt: skip
    else:
        ds = preprocessing_dataset(env["train"], env["transform"](), "memory")
    loader = make_dataloader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                             num_workers=args.num_workers, device=device,
                             generator=torch.Generator().manual_seed(0))  # fmt: skip
    common = dict(device=device, max_epochs=MAX_EPOCHS, train_data_loader=loader, **_amp(args))
    if mode == "student":
        net = prepare_network(student, device, channels_last=args.channels_last)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        return SupervisedTrainer(network=net, optimizer=opt, loss_function=torch.nn.CrossEntropyLoss(), **common)
    if mode == "cached_rd":
        net = RDNet(None, student, teacher_feature_shape=feature_shape)
    elif mode == "teacher_rd":
        net = RDNet(teacher, student)
    else:
        raise ValueError(f"Unknown benchmark mode {mode!r}; use one of {MODES}.")
    net = prepare_network(net, device, channels_last=args.channels_last)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    return RDTrainer(network=net, optimizer=opt, loss_function=RDLoss(gather_distributed=False), **common)


def rd_flops(teacher, student_name: str, feature_shape, image_size: int, batch_size: int = 4) -> dict:
    """Exact FLOPs per image of one training step of each mode, and the two FLOP bounds.

    Returns ``{"T_fwd", "S_train", "SG_train"}`` (teacher forward; student-only step; cached RD step = ``S``,
    ``g``, ``h`` forward and backward with the RD loss) per image, ``"bound_a"`` = ``SG_train / S_train`` and
    ``"bound_b"`` = ``(T_fwd + SG_train) / SG_train``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from monai_rd.deploy.cost import count_flops
    from monai_rd.losses import RDLoss
    from monai_rd.networks import RDNet, StudentClassifier

    batch_size = min(batch_size, 4)  # counts per image do not depend on the batch (BatchNorm needs 2 or more)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 3, image_size, image_size, generator=gen)
    y = torch.arange(batch_size) % 3

    def train_step_flops(step) -> int:
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        return int(counter.get_total_flops())

    torch.manual_seed(0)
    student = StudentClassifier(student_name, num_classes=3).train()
    s_train = train_step_flops(lambda: torch.nn.functional.cross_entropy(student(x), y).backward())
    net = RDNet(None, StudentClassifier(student_name, num_classes=3), teacher_feature_shape=feature_shape).train()
    feats = torch.randn(batch_size, *feature_shape, generator=gen)
    sg_train = train_step_flops(lambda: RDLoss(gather_distributed=False)(net(x, teacher_features=feats), y)["loss"]
                                .backward())  # fmt: skip
    t_fwd = count_flops(teacher, x)
    per = {"T_fwd": t_fwd / batch_size, "S_train": s_train / batch_size, "SG_train": sg_train / batch_size}
    per["bound_a"] = per["SG_train"] / per["S_train"]
    per["bound_b"] = flop_bound(per["T_fwd"], per["SG_train"])
    per["g_params"] = sum(p.numel() for p in net.reprogrammer.parameters())
    per["S_params"] = sum(p.numel() for p in student.parameters())
    per["g_width"] = net.reprogrammer.width
    return per


def flop_bound(t_fwd: float, sg_train: float) -> float:
    """``(T_fwd + S_train + g_train) / (S_train + g_train)``: the most the cache can speed an RD step up."""
    return (t_fwd + sg_train) / sg_train


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> tuple[float, float]:
    t1 = _clock()
    return t1[0] - t0[0], t1[1] - t0[1]


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _steady_state(engine, args, steps_per_epoch: int) -> dict:
    """Steady-state images/s and the per-part breakdown of ``engine``'s steps (:mod:`.bench_timing`)."""
    from monai_rd.experiments.bench_timing import StepTimer, steady_state

    min_steps = max(args.min_steps, math.ceil(args.epochs * steps_per_epoch / args.repeats))
    timer = StepTimer(engine, warmup_steps=args.warmup_steps, repeats=args.repeats, min_steps=min_steps,
                      min_time=args.min_time, sync=lambda: _sync(args.device))  # fmt: skip
    engine.run()
    return steady_state(timer.measured(), args.batch_size, args.repeats, min_steps, args.min_time)


def _cache_read_ms(dataset, batch_size: int) -> float | None:
    """CPU ms of the feature-cache reads of one batch, timed in isolation (every cached item and view once)."""
    cache = getattr(dataset, "cache", None)
    if cache is None:
        return None
    pairs = [(i, k) for i in range(len(dataset)) for k in range(cache.views)]
    t0 = time.process_time()
    for i, k in pairs:
        cache.features(i, k)
    return 1000 * (time.process_time() - t0) / len(pairs) * batch_size


def _fill_view_cache(dataset, args) -> dict:
    """Keep every served view before timing the cached mode: the steady state of a run, where after the first
    epochs (about ``K ln K``) every ``(item, view)`` has been drawn and no transform runs. Loader workers keep their
    own views, so with ``--num_workers`` > 0 they fill during the warm-up only."""
    total = len(dataset) * dataset.views
    if args.num_workers != 0:
        return {"kept": None, "views": total, "fill_s": None}
    t0 = _clock()
    kept = dataset.fill_view_cache()
    return {"kept": kept, "views": total, "fill_s": list(_since(t0))}


def _memory_worker(args) -> int:
    """Child process: one training epoch of ``args.memory_worker``; prints JSON with peak RSS."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    env = _setup(args, args.workdir)
    baseline = _proc_status_mib("VmRSS")  # interpreter + torch + MONAI imported, data indexed
    teacher = args.teachers[0]
    shape = None
    if args.memory_worker == "cached_rd":
        from monai_rd.data import cached_feature_shape

        shape = cached_feature_shape(os.path.dirname(_cache_dir(args.workdir, teacher)))
    engine = _engine(args.memory_worker, args.students[0], args, env, teacher_name=teacher, feature_shape=shape)
    engine.state.max_epochs = 1
    engine.run()
    print(json.dumps({"mode": args.memory_worker, "baseline_mib": baseline, "peak_mib": _proc_status_mib("VmHWM")}))
    return 0


def _peak_rss(mode: str, student: str, args) -> dict:
    cmd = [sys.executable, "-m", "monai_rd.cli", "bench", "--memory_worker", mode, "--workdir", args.workdir,
           "--teachers", args.teachers[0], "--students", student, "--image_size", str(args.image_size),
           "--images_per_class", str(args.images_per_class), "--batch_size", str(args.batch_size),
           "--num_workers", str(args.num_workers)]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker {mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def _timed_forward(module, device):
    """``module`` wrapped so that every forward appends ``((wall, process CPU), batch size)`` to ``.stamps`` as it
    finishes (device synced): a module itself, so :meth:`FeatureCache.build` runs it as the teacher."""
    import torch

    class TimedForward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module, self.stamps = module, []

        def forward(self, images):
            out = self.module(images)
            _sync(device)
            self.stamps.append((_clock(), len(images)))
            return out

    return TimedForward()


def steady_rate(stamps: list, start: tuple[float, float] | None = None) -> list[float]:
    """Images/s (wall, CPU) of a run of teacher batches: ``stamps`` are ``((wall, cpu), images)`` taken as each
    batch finished. Steady state: from the end of the first batch to the end of the last, so the images of every
    batch but the first over that span (the first batch carries the pipeline's fill: reading it before the teacher
    can start). With ``start`` (the run's ``(wall, cpu)`` start), the whole run instead: every image over
    ``last - start``."""
    if start is None:
        if len(stamps) < 2:
            raise ValueError("a steady rate needs at least 2 batches; lower --teacher_batch_size or raise --views.")
        (first, _), (last, _) = stamps[0], stamps[-1]
        images = sum(n for _, n in stamps[1:])
    else:
        first, last = start, stamps[-1][0]
        images = sum(n for _, n in stamps)
    return [images / (last[i] - first[i]) for i in (0, 1)]


def _build_views(args, per_image_s: float, items: int) -> int:
    """Views per item for (d): at least ``--views``, and enough images for a teacher batch and ``--build_min_time``
    seconds of steady forward after the first batch (for scale: ``monai-rd cache-features`` builds 8 views)."""
    bs = args.teacher_batch_size
    steady = max(bs, math.ceil(args.build_min_time / max(per_image_s, 1e-9)))
    return max(args.views, math.ceil((bs + steady) / items))


def _build_cache(args, env, teacher_name: str, teacher) -> dict:
    """(d): the teacher's pure forward on the view images in memory, then the cache build of the same views.

    Both are timed batch by batch (:func:`steady_rate`): the steady-state ratio is judged, the whole-run ratio (the
    build's start-up, pipeline fill, last chunk's write and opening included) is reported next to it. Enough views
    per item are built for a steady figure (:func:`_build_views`); the cache the training modes read is then
    rebuilt with ``--views``.
    """
    import torch

    from monai_rd.data import FeatureCache
    from monai_rd.data.feature_cache import apply_view, item_id, view_seed

    device, bs = torch.device(args.device), args.teacher_batch_size
    transform = env["transform"]()
    teacher = teacher.to(device).eval()
    items = env["train"]
    with torch.no_grad():  # warm-up, and the teacher's cost per image to size the measurement
        probe = torch.stack([apply_view(transform, items[i % len(items)], view_seed(item_id(items[i % len(items)]), 0))
                             ["image"].as_subclass(torch.Tensor) for i in range(bs)]).to(device)  # fmt: skip
        teacher(probe)
        _sync(device)
        t0 = _clock()
        teacher(probe)
        _sync(device)
        per_image = _since(t0)[0] / bs
    k = _build_views(args, per_image, len(items))
    images = torch.stack([
        apply_view(transform, item, view_seed(item_id(item), v))["image"].as_subclass(torch.Tensor)
        for item in items for v in range(k)
    ])  # fmt: skip
    runs: dict[str, list] = {"pure": [], "build": [], "pure_whole": [], "build_whole": []}
    with torch.no_grad():
        for _ in range(args.build_repeats):
            timed = _timed_forward(teacher, device)
            _sync(device)
            t0 = _clock()
            for s in range(0, len(images), bs):
                timed(images[s : s + bs].to(device))
            runs["pure"].append(steady_rate(timed.stamps))
            runs["pure_whole"].append(steady_rate(timed.stamps, start=t0))
    cache_dir = _cache_dir(args.workdir, teacher_name)
    for _ in range(args.build_repeats):  # the teacher is warm: each build is timed from an empty cache folder
        if os.path.isdir(cache_dir):
            shutil.rmtree(cache_dir)
        cache = FeatureCache(cache_dir, items, env["transform"](), teacher_name)
        timed = _timed_forward(teacher, device)
        t0 = _clock()
        cache.build(timed, views=k, dtype=args.dtype, batch_size=bs, num_workers=args.build_workers, device=device,
                    progress=False)  # fmt: skip
        _sync(device)
        whole = [len(images) / t for t in _since(t0)]
        runs["build"].append(steady_rate(timed.stamps))
        runs["build_whole"].append(whole)
    if k != args.views:  # the training modes read the cache they would be given: --views views
        shutil.rmtree(cache_dir)
        cache = FeatureCache(cache_dir, items, env["transform"](), teacher_name)
        cache.build(teacher, views=args.views, dtype=args.dtype, batch_size=bs, num_workers=args.build_workers,
                    device=device, progress=False)  # fmt: skip
    med = {name: [statistics.median(r[i] for r in rs) for i in (0, 1)] for name, rs in runs.items()}
    return {"build_views": k, "build_images": len(images), "feature_shape": list(cache.feature_shape),
            "teacher_forward_img_s": med["pure"], "build_img_s": med["build"],
            "teacher_forward_whole_img_s": med["pure_whole"], "build_whole_img_s": med["build_whole"],
            "runs": runs, "load_average": list(os.getloadavg()),
            "d_build_over_forward": [med["build"][i] / med["pure"][i] for i in (0, 1)],
            "d_whole_build_over_forward": [med["build_whole"][i] / med["pure_whole"][i] for i in (0, 1)]}  # fmt: skip


def _fmt_goal_a(student: str) -> str:
    goal = GOALS["a"].get(student)
    return f"<= {goal:.2f}" if goal else "-"


def _met(value: float, goal: float | None, at_most: bool) -> str:
    if goal is None:
        return ""
    return " met" if (value <= goal if at_most else value >= goal) else " NOT met"


def nccl_check(args: argparse.Namespace, steps: int = 20) -> int:
    """Under ``torchrun`` on CUDA: cached-RD training steps of ``args.students[0]`` in DDP over NCCL, fp16 autocast
    with a ``GradScaler``; checks that the trainable parameters stay identical on every rank, prints images/s."""
    import torch
    import torch.distributed as dist

    from monai_rd.losses import RDLoss
    from monai_rd.networks import RDNet, StudentClassifier, distributed_rdnet

    if "LOCAL_RANK" not in os.environ:
        raise SystemExit("--nccl_check runs under torchrun: torchrun --standalone --nproc_per_node=<GPUs> "
                         "-m monai_rd.cli bench --device cuda --nccl_check")  # fmt: skip
    check_device("cuda")
    rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl")
    try:
        device = torch.device("cuda", rank)
        torch.manual_seed(0)
        net = RDNet(None, StudentClassifier(args.students[0], num_classes=3), teacher_feature_shape=(2048,)).to(device)
        ddp = distributed_rdnet(net, device_ids=[rank])
        opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler("cuda")
        loss_fn = RDLoss()  # gathers features across ranks for CKA (another NCCL collective)
        gen = torch.Generator(device=device).manual_seed(rank)
        b, size = args.batch_size, args.image_size
        x = torch.rand(b, 3, size, size, device=device, generator=gen)
        feats = torch.rand(b, 2048, device=device, generator=gen)
        y = torch.arange(b, device=device) % 3
        for i in range(steps + 3):
            if i == 3:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.float16):
                loss = loss_fn(ddp(x, teacher_features=feats), y)["loss"]
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        flat = torch.cat([p.detach().float().flatten() for p in net.parameters() if p.requires_grad])
        gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, flat)
        same = all(torch.equal(g, gathered[0]) for g in gathered)
        if rank == 0:
            print(f"NCCL DDP check: world size {dist.get_world_size()}, {args.students[0]} cached RD, fp16 + GradScaler "
                  f"(scale {scaler.get_scale():.0f}), {steps * b * dist.get_world_size() / elapsed:.1f} img/s, "
                  f"parameters identical on all ranks: {same}", flush=True)  # fmt: skip
        return 0 if same else 1
    finally:
        dist.destroy_process_group()


def run_benchmark(args: argparse.Namespace) -> int:
    """Run the benchmark described in the module docstring with the options of ``monai-rd bench``."""
    check_device(args.device)
    if args.nccl_check:
        return nccl_check(args)
    if args.memory_worker:
        return _memory_worker(args)
    import torch

    from monai_rd.networks import build_teacher

    if not 16 <= args.image_size <= 224:
        raise SystemExit("--image_size must be in [16, 224].")
    if args.channels_last and args.device == "cpu":
        print("note: --channels_last on the CPU is measured as asked (it mainly helps tensor cores)", flush=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="rd_bench_"))
    env = _setup(args, args.workdir)
    n = len(env["train"])
    steps_per_epoch = n // args.batch_size
    if steps_per_epoch < 1:
        raise SystemExit(f"{n} training images make no full batch of {args.batch_size}: raise --images_per_class.")
    cuda = torch.device(args.device).type == "cuda"
    print(f"monai-rd bench: teachers {args.teachers}, students {args.students}, {args.image_size} px, {n} training "
          f"images (x {args.views} cached views), batch {args.batch_size}, teacher batch {args.teacher_batch_size}, "
          f"device {args.device}, amp {args.amp}, channels_last {args.channels_last}, loader workers "
          f"{args.num_workers}, torch threads {torch.get_num_threads()}, workdir {args.workdir}", flush=True)  # fmt: skip
    result: dict = {"args": {k: v for k, v in vars(args).items() if k != "memory_worker"}, "teachers": {}, "pairs": [],
                    "memory": {}}  # fmt: skip
    student_epochs: dict = {}
    for teacher_name in args.teachers:
        torch.manual_seed(0)
        teacher = build_teacher(teacher_name)
        built = _build_cache(args, env, teacher_name, teacher)
        result["teachers"][teacher_name] = built
        shape = tuple(built["feature_shape"])
        d, whole = built["d_build_over_forward"], built["d_whole_build_over_forward"]
        print(
            f"[{teacher_name}] features {shape}, {built['build_images']} images ({built['build_views']} views): "
            f"steady teacher forward {built['teacher_forward_img_s'][0]:.1f} img/s wall, cache build "
            f"{built['build_img_s'][0]:.1f}; (d) build/forward {d[0]:.2f} wall, {d[1]:.2f} CPU (whole runs: "
            f"{whole[0]:.2f} wall, {whole[1]:.2f} CPU; goal >= {GOALS['d']} wall){_met(d[0], GOALS['d'], False)}",
            flush=True,
        )
        for student in args.students:
            flops = rd_flops(teacher.cpu(), student, shape, args.image_size, args.batch_size)
            steady, gpu_peak = {}, {}
            for mode in MODES:
                if mode == "student" and student in student_epochs:
                    steady[mode], gpu_peak[mode] = student_epochs[student]
                    continue
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                engine = _engine(mode, student, args, env, teacher=teacher, teacher_name=teacher_name,
                                 feature_shape=shape)  # fmt: skip
                if mode == "cached_rd":
                    kept = _fill_view_cache(engine.data_loader.dataset, args)
                steady[mode] = _steady_state(engine, args, steps_per_epoch)
                if mode == "cached_rd":
                    steady[mode]["view_cache"] = kept
                    steady[mode]["cache_read_ms_per_step_isolated"] = _cache_read_ms(
                        engine.data_loader.dataset, args.batch_size)  # fmt: skip
                gpu_peak[mode] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
                del engine
            student_epochs[student] = (steady["student"], gpu_peak["student"])
            img_s = {m: steady[m]["img_s"] for m in MODES}
            pair = {"teacher": teacher_name, "student": student, "flops": flops, "steady": steady, "img_s": img_s,
                    "gpu_peak_mib": gpu_peak if cuda else None,
                    "a_cached_over_student": [img_s["student"][i] / img_s["cached_rd"][i] for i in (0, 1)],
                    "b_speedup": [img_s["cached_rd"][i] / img_s["teacher_rd"][i] for i in (0, 1)]}  # fmt: skip
            pair["b_fraction_of_bound"] = [s / flops["bound_b"] for s in pair["b_speedup"]]
            result["pairs"].append(pair)
            print(f"[{teacher_name} -> {student}] steady-state img/s, wall (CPU): "
                  + ", ".join(f"{m} {img_s[m][0]:.1f} ({img_s[m][1]:.1f})" for m in MODES)
                  + (f"; peak GPU MiB {', '.join(f'{m} {v:.0f}' for m, v in gpu_peak.items())}" if cuda else ""),
                  flush=True)  # fmt: skip
        teacher.cpu()
        del teacher
    if not cuda and not args.no_memory:
        for student in args.students:
            mem = {mode: _peak_rss(mode, student, args) for mode in ("student", "cached_rd")}
            mem["c_ratio"] = mem["cached_rd"]["peak_mib"] / mem["student"]["peak_mib"]
            result["memory"][student] = mem
    _print_table(result, args)
    if args.json_out:
        from monai_rd.utils import atomic_write_json

        atomic_write_json(args.json_out, result)
    return 0


def _print_table(result: dict, args) -> None:
    cuda = torch_device_type(args.device) == "cuda"
    j = 0 if cuda else 1  # goals are judged on CPU time on the CPU (the steadier measure), on wall time on a GPU
    print(f"\n(a) cached RD / student-only and (b) teacher-in-loop / cached RD speed-up, steady state (median of "
          f"{args.repeats} windows after the warm-up); wall (CPU time); bounds from exact FLOP counts; goals judged "
          f"on {'wall' if cuda else 'CPU'} time")  # fmt: skip
    header = (
        f"{'teacher':<22}{'student':<20}{'g width':>8}{'g/S par':>8} | {'(a) meas':>14}{'FLOP bnd':>9}"
        f"{'goal':>8} | {'(b) meas':>14}{'FLOP bnd':>9}{'meas/bnd':>14}{'goal':>8}"
    )
    print(header)
    print("-" * len(header))
    for p in result["pairs"]:
        f = p["flops"]
        a, b, frac = p["a_cached_over_student"], p["b_speedup"], p["b_fraction_of_bound"]
        goal_a = GOALS["a"].get(p["student"])
        print(
            f"{p['teacher']:<22}{p['student']:<20}{str(f['g_width'] or 'full'):>8}"
            f"{f['g_params'] / f['S_params']:>8.2f} | {a[0]:>6.2f} ({a[1]:.2f}){f['bound_a']:>9.3f}"
            f"{_fmt_goal_a(p['student']):>8} | {b[0]:>6.2f} ({b[1]:.2f}){f['bound_b']:>9.2f}"
            f"{frac[0]:>7.2f} ({frac[1]:.2f}){'>= ' + str(GOALS['b']):>8}"
            f"{_met(a[j], goal_a, True)}{_met(frac[j], GOALS['b'], False)}"
        )
    for p in result["pairs"]:
        _print_breakdown(p, result["teachers"][p["teacher"]], args)
    print(f"\n(d) cache build / pure teacher forward (images/s), teacher batch {args.teacher_batch_size}, steady state "
          f"(after the first batch); judged on wall time: reading overlaps the teacher on another core, which CPU time "
          f"cannot show (it counts the reading too); whole runs (start-up, fill, last write) in brackets")  # fmt: skip
    for name, t in result["teachers"].items():
        d, whole = t["d_build_over_forward"], t["d_whole_build_over_forward"]
        print(
            f"{name:<22} {t['build_images']:>4} images  forward {t['teacher_forward_img_s'][0]:8.1f}  build "
            f"{t['build_img_s'][0]:8.1f}  ratio {d[0]:.2f} wall ({d[1]:.2f} CPU)  [whole {whole[0]:.2f} wall, "
            f"{whole[1]:.2f} CPU]  goal >= {GOALS['d']}{_met(d[0], GOALS['d'], False)}  load average "
            f"{t['load_average'][0]:.1f}"
        )
    if result["memory"]:
        print(f"\n(c) peak RSS (MiB) of one epoch, each in a fresh process, teacher {args.teachers[0]}")
        for student, m in result["memory"].items():
            print(
                f"{student:<20} student {m['student']['peak_mib']:7.0f}  cached RD {m['cached_rd']['peak_mib']:7.0f}"
                f"  ratio {m['c_ratio']:.2f}  goal <= {GOALS['c']}{_met(m['c_ratio'], GOALS['c'], True)}"
                f"  (after imports: {m['student']['baseline_mib']:.0f} / {m['cached_rd']['baseline_mib']:.0f})"
            )


def torch_device_type(device: str) -> str:
    import torch

    return torch.device(device).type


_PART_LABELS = {
    "batch_wait": "wait for the batch (main thread)",
    "loader_thread": "loading + augmentation + cache reads (loader thread)",
    "forward": "forward (to device, zero_grad, S+g+h; T in loop)",
    "loss": "loss (CE / RD: CE, KD, CKA)",
    "backward": "backward",
    "optimizer": "optimizer step (+ scalar outputs)",
    "engine": "engine + handlers (decollate, events, epochs)",
}


def _print_breakdown(pair: dict, teacher: dict, args) -> None:
    """Where one steady-state step goes, per mode: ms per step, wall (CPU), and the arithmetic rate it reached."""
    from monai_rd.experiments.bench_timing import PARTS

    steady, flops, b = pair["steady"], pair["flops"], args.batch_size
    print(f"\nbreakdown of one steady-state step (batch {b}), ms wall (CPU), {pair['teacher']} -> {pair['student']}")
    print(f"{'part':<56}" + "".join(f"{m:>22}" for m in MODES))

    def cell(v) -> str:
        wall = "-" if v[0] != v[0] else f"{v[0]:.1f}"  # NaN: the loader thread has no wall time of its own
        return f"{wall + ' (' + format(v[1], '.1f') + ')':>22}"

    for part in ("batch_wait", "loader_thread", *PARTS[1:]):
        print(f"{_PART_LABELS[part]:<56}" + "".join(cell(steady[m]["breakdown_ms_per_step"][part]) for m in MODES))
    print(f"{'sum of parts':<56}" + "".join(cell(steady[m]["sum_of_parts_ms_per_step"]) for m in MODES))
    print(f"{'measured step':<56}" + "".join(cell(steady[m]["total_ms_per_step"]) for m in MODES))
    read = steady["cached_rd"].get("cache_read_ms_per_step_isolated")
    if read is not None:
        print(f"{'  of the loader thread: feature-cache reads (isolated)':<56}{'':>22}{f'- ({read:.2f})':>22}")
    print(f"{'img/s: median [min, max] over windows, CPU time':<56}" + "".join(
        f"{steady[m]['img_s'][1]:>8.1f} [{steady[m]['img_s_spread'][1][0]:.1f}, {steady[m]['img_s_spread'][1][1]:.1f}]"
        .rjust(22) for m in MODES))  # fmt: skip
    work = {"student": flops["S_train"], "cached_rd": flops["SG_train"],
            "teacher_rd": flops["SG_train"] + flops["T_fwd"]}  # fmt: skip
    rates = []
    for m in MODES:
        br = steady[m]["breakdown_ms_per_step"]
        ms = br["forward"][1] + br["loss"][1] + br["backward"][1] + br["optimizer"][1]
        rates.append(f"{work[m] * b / ms / 1e6:.1f}" if ms > 0 else "-")
    print(f"{'GFLOP/s of forward+loss+backward+optimizer, CPU time':<56}" + "".join(f"{r:>22}" for r in rates))
    print(f"{'GFLOP/s of the pure teacher forward (d), CPU time':<56}"
          f"{flops['T_fwd'] * teacher['teacher_forward_img_s'][1] / 1e9:>22.1f}")  # fmt: skip

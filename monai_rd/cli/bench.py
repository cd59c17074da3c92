"""``monai-rd bench``: RD's training cost next to its FLOP bounds (:mod:`monai_rd.experiments.bench`)."""

from __future__ import annotations

import argparse

HELP = "benchmark RD: images/s student-only vs cached RD vs teacher-in-the-loop RD, FLOP bounds, memory, cache build"

TEACHERS = ("resnet50", "lvmmed_vit_b")
STUDENTS = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _nonnegative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _workers(text: str) -> int | None:
    if text in ("auto", "None", "none"):
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 or 'auto', got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teachers", nargs="+", default=list(TEACHERS), help=f"teacher names (default {TEACHERS})")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), help=f"student names (default {STUDENTS})")
    parser.add_argument("--image_size", type=int, default=112, help="image side, 16 to 224 (default 112)")
    parser.add_argument("--images_per_class", type=_positive, default=16, help="fabricated images per BUSI class")
    parser.add_argument("--views", type=_positive, default=2, help="K cached views per training image")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float16", help="cache storage dtype")
    parser.add_argument("--batch_size", type=_positive, default=8, help="training batch")
    parser.add_argument(
        "--teacher_batch_size",
        type=_positive,
        default=32,
        help="teacher batch of the cache build and the pure forward (independent of --batch_size)",
    )
    parser.add_argument(
        "--epochs",
        type=_positive,
        default=1,
        help="at least this many epochs' steps measured per mode, over all windows (after the warm-up epoch)",
    )
    parser.add_argument(
        "--warmup_steps", type=_nonnegative, default=0, help="steps excluded after the warm-up epoch (default 0)"
    )
    parser.add_argument(
        "--repeats", type=_positive, default=3, help="steady-state windows per mode: median and spread over them"
    )
    parser.add_argument(
        "--build_repeats", type=_positive, default=1, help="(d): timed teacher forwards and cache builds (median)"
    )
    parser.add_argument(
        "--build_min_time",
        type=float,
        default=3.0,
        help="(d): seconds of steady teacher forward at least (more views per item are built for it; default 3)",
    )
    parser.add_argument("--min_steps", type=_positive, default=4, help="steps per window at least (default 4)")
    parser.add_argument(
        "--min_time", type=float, default=0.0, help="process CPU seconds per window at least (default 0)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (refused clearly without CUDA)")
    parser.add_argument(
        "--amp",
        choices=("none", "bf16", "fp16"),
        default="none",
        help="autocast dtype of training (fp16 also uses a GradScaler)",
    )
    parser.add_argument("--channels_last", action="store_true", help="networks in channels_last memory format")
    parser.add_argument("--num_workers", type=_workers, default=0, help="training loader workers ('auto': chosen)")
    parser.add_argument(
        "--build_workers",
        type=_workers,
        default=None,
        help="cache-build reader workers (default: chosen from the machine)",
    )
    parser.add_argument("--no_memory", action="store_true", help="skip the peak-RSS subprocesses (CPU)")
    parser.add_argument("--threads", type=_positive, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--workdir", default=None, help="folder for data and caches (default: a temporary one)")
    parser.add_argument("--json_out", default=None, help="also write the results as JSON here")
    parser.add_argument(
        "--nccl_check",
        action="store_true",
        help="under torchrun on GPUs: RD training steps in DDP over NCCL with fp16 + GradScaler",
    )
    parser.add_argument("--memory_worker", default=None, choices=("student", "cached_rd"), help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from monai_rd.experiments.bench import run_benchmark

    return run_benchmark(args)

"""``monai-rd bench``: the teacher-feature cache benchmark (:mod:`monai_rd.experiments.bench`)."""

from __future__ import annotations

import argparse

HELP = "benchmark the teacher-feature cache: epoch time, memory and build throughput ratios"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", default="resnet50")
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--image_size", type=int, default=112, help="image side, 32 to 224 (default 112)")
    parser.add_argument("--images_per_class", type=int, default=16, help="fabricated images per BUSI class")
    parser.add_argument("--views", type=int, default=2, help="K cached views per training image")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float16")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per mode (after one warm-up epoch)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--workdir", default=None, help="folder for data and cache (default: a temporary one)")
    parser.add_argument("--json_out", default=None, help="also write the results as JSON here")
    parser.add_argument("--memory_worker", default=None, choices=("student", "cached_rd"), help=argparse.SUPPRESS)



def run(args: argparse.Namespace) -> int:
    from monai_rd.experiments.bench import run_benchmark

    return run_benchmark(args)

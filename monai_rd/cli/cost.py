"""Parameters, FLOPs and latency per batch (eager, TorchScript, onnxruntime) of a teacher and its students."""

from __future__ import annotations

import argparse
import sys

HELP = "the paper's Table 6: params, FLOPs and latency of teacher vs students, with T/S ratios"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", default="resnet50", help="teacher registry name (default resnet50)")
    parser.add_argument("--teacher_weights", default=None, help="optional local teacher weights file")
    parser.add_argument("--students", nargs="+", default=["resnet18", "mobilenet_v2", "shufflenet_v2_x1_0"])
    parser.add_argument("--num_classes", type=int, default=3)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--spatial_dims",
        type=int,
        default=2,
        choices=(2, 3),
        help="3: volumes [B, C, s, s, s] with 3D students (monai:resnet10 ...) and a volume teacher",
    )
    parser.add_argument("--in_channels", type=int, default=1, help="volume channels with --spatial_dims 3")
    parser.add_argument(
        "--backends", nargs="+", default=None, help="eager, torchscript and/or onnxruntime (default: all)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch/onnxruntime intra-op threads")
    parser.add_argument("--csv", default=None, help="also write the table as CSV here")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown here")


def run(args: argparse.Namespace) -> int:
    import torch

    from monai_rd.deploy.cost import BACKENDS, cost_table, format_table, table_csv
    from monai_rd.utils import atomic_write_text

    unknown = sorted(set(args.backends or ()) - set(BACKENDS))
    if unknown:
        print(f"monai-rd cost: unknown --backends {unknown}; choose from {list(BACKENDS)}", file=sys.stderr)
        return 2
    args.backends = list(args.backends or BACKENDS)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = cost_table(
        args.teacher,
        args.students,
        num_classes=args.num_classes,
        image_size=args.image_size,
        batch_size=args.batch_size,
        backends=args.backends,
        warmup=args.warmup,
        repeats=args.repeats,
        teacher_weights=args.teacher_weights,
        spatial_dims=args.spatial_dims,
        in_channels=args.in_channels,
    )
    shape = (
        ([args.in_channels] + [args.image_size] * 3)
        if args.spatial_dims == 3
        else [3, args.image_size, args.image_size]
    )
    print(
        f"batch {args.batch_size} x {' x '.join(map(str, shape))}, fp32, CPU, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} after {args.warmup} warm-up runs"
    )
    print(format_table(rows))
    if args.csv:
        table_csv(rows, args.csv)
    if args.markdown:
        atomic_write_text(args.markdown, format_table(rows, markdown=True) + "\n")
    return 0

"""Export a trained student checkpoint (``model.pt``) to TorchScript and ONNX, checking parity with eager PyTorch."""

from __future__ import annotations

import argparse
import sys

HELP = "export the deployable student to TorchScript/ONNX (dynamic batch) and check parity (< 1e-4)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="student checkpoint written by training (<output_dir>/model.pt)")
    parser.add_argument("--student", required=True, help="student registry name used in training, e.g. resnet18")
    parser.add_argument("--num_classes", type=int, default=None, help="default: rows of head.weight in the checkpoint")
    parser.add_argument("--output_dir", default="models", help="folder for model.ts / model.onnx (default ./models)")
    parser.add_argument("--basename", default="model")
    parser.add_argument("--image_size", type=int, default=224, help="side of the example/parity inputs")
    parser.add_argument("--formats", nargs="+", default=["torchscript", "onnx"], choices=["torchscript", "onnx"])
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 3], help="parity batch sizes (dynamic batch)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="max allowed |exported - eager| (fp32), times max(1, max |eager logit|)",
    )
    parser.add_argument(
        "--trust_checkpoint", action="store_true", help="allow pickle in the checkpoint (trusted files only)"
    )


def run(args: argparse.Namespace) -> int:
    from monai_rd.deploy.export import ParityError, export_student, load_student

    model = load_student(args.ckpt, args.student, args.num_classes, trust_checkpoint=args.trust_checkpoint)
    try:
        result = export_student(
            model,
            args.output_dir,
            image_size=args.image_size,
            formats=args.formats,
            batch_sizes=args.batch_sizes,
            tolerance=args.tolerance,
            basename=args.basename,
        )
    except ParityError as e:
        print(f"monai-rd export: {e}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0

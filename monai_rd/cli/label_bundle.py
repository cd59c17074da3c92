"""Package a trained RD run as a bundle MONAI Label can serve: configs set to the run, ``models/model.pt`` in place."""

from __future__ import annotations

import argparse

HELP = "package a trained run (output_dir/model.pt) as a MONAI Label-ready bundle with models/model.pt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output_dir", required=True, help="the training run's output_dir (model.pt, executed_config.json)"
    )
    parser.add_argument("--dest", required=True, help="bundle folder to write, e.g. apps/monailabel/model/rd_busi")
    parser.add_argument("--bundle", default="rd_busi", help="bundle name under bundles/ (default rd_busi)")
    parser.add_argument("--bundle_root", default=None, help="bundle folder (overrides --bundle)")
    parser.add_argument("--ckpt", default=None, help="weights to serve (default <output_dir>/model.pt)")


def run(args: argparse.Namespace) -> int:
    from monai_rd.bundle import bundle_root
    from monai_rd.deploy.label import prepare_label_bundle

    dest = prepare_label_bundle(
        args.bundle_root or bundle_root(args.bundle), args.output_dir, args.dest, checkpoint=args.ckpt
    )
    print(
        f"MONAI Label bundle ready: {dest}  (serve: monailabel start_server --app apps/monailabel "
        f"--studies <images> --conf bundle {dest})"
    )
    return 0

"""Write a small synthetic dataset in the exact BUSI layout and train the rd_busi bundle on it (CPU, minutes)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ..bundle import bundle_root
from ..data.synthetic import make_busi_like

HELP = "try RD without data: synthetic BUSI-layout images, the real rd_busi bundle, a few epochs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="rd_demo", help="folder for the data and outputs (default ./rd_demo)")
    parser.add_argument("--images_per_class", type=int, default=24)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--max_epochs", type=int, default=3)
    parser.add_argument("--teacher", default="resnet50")
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--seed", type=int, default=0)


def bundle_command(args: argparse.Namespace, dataset_dir: str, output_dir: str) -> list[str]:
    """The ``python -m monai.bundle run`` command line the demo executes (printed for the user too)."""
    config = os.path.join(bundle_root("rd_busi"), "configs", "train.json")
    return [
        sys.executable, "-m", "monai.bundle", "run",
        "--config_file", config,
        "--dataset_dir", dataset_dir,
        "--output_dir", output_dir,
        "--image_size", str(args.image_size),
        "--max_epochs", str(args.max_epochs),
        "--batch_size", "8",
        "--num_workers", "0",
        "--teacher", args.teacher,
        "--student", args.student,
        "--seed", str(args.seed),
    ]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    workdir = os.path.abspath(args.workdir)
    data = make_busi_like(os.path.join(workdir, "data"), n_per_class=args.images_per_class, size=args.image_size,
                          seed=args.seed)
    output_dir = os.path.join(workdir, "outputs")
    cmd = bundle_command(args, data, output_dir)
    print("Synthetic BUSI-layout data written to", data)
    print("Running:", " ".join(cmd), flush=True)
    code = subprocess.call(cmd)
    if code == 0:
        print(f"\nDone. Best student checkpoint: {os.path.join(output_dir, 'model.pt')}")
        print(f"MLflow store: sqlite:///{os.path.join(output_dir, 'mlruns.db')}  "
              f"(browse with: mlflow ui --backend-store-uri sqlite:///{os.path.join(output_dir, 'mlruns.db')})")
    return code

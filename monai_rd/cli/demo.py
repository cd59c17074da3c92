"""Write a small synthetic dataset in the exact layout of a real one and train its bundle on it (CPU, minutes)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HELP = "try RD without data: synthetic images in a real dataset's layout, that dataset's bundle, a few epochs"




def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="busi",
                        help="whose layout and bundle to use: busi, isic, covid, btc or chestxray (default busi)")
    parser.add_argument("--workdir", default="rd_demo",
                        help="folder for data/ and outputs/ (data_<dataset>/, outputs_<dataset>/ for other datasets)")
    parser.add_argument("--images_per_class", type=int, default=24,
                        help="images per class (patients for chestxray; default 24)")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--max_epochs", type=int, default=3)
    parser.add_argument("--teacher", default="resnet50")
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--seed", type=int, default=0)


def bundle_command(args: argparse.Namespace, dataset_dir: str, output_dir: str) -> list[str]:
    """The ``python -m monai.bundle run`` command line the demo executes (printed for the user too)."""
    from monai_rd.bundle import bundle_root
    from monai_rd.experiments.demo import DEMO_DATASETS

    config = os.path.join(bundle_root(DEMO_DATASETS[args.dataset].bundle), "configs", "train.json")
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
    from monai_rd.bundle import bundle_command as command_line
    from monai_rd.experiments.demo import DEMO_DATASETS

    if args.dataset not in DEMO_DATASETS:
        print(f"monai-rd demo: --dataset {args.dataset!r}: choose from {sorted(DEMO_DATASETS)}", file=sys.stderr)
        return 2
    workdir = os.path.abspath(args.workdir)
    demo = DEMO_DATASETS[args.dataset]
    suffix = "" if args.dataset == "busi" else f"_{args.dataset}"  # BUSI keeps the original data/ and outputs/
    data = demo.writer(os.path.join(workdir, f"data{suffix}"), args.images_per_class, args.image_size, args.seed)
    output_dir = os.path.join(workdir, f"outputs{suffix}")
    cmd = bundle_command(args, data, output_dir)
    print(f"Synthetic {args.dataset}-layout data written to", data)
    print("Running:", " ".join(cmd), flush=True)
    code = subprocess.call(cmd)
    if code == 0:
        print(f"\nDone. Best student checkpoint: {os.path.join(output_dir, 'model.pt')}")
        print(f"MLflow store: sqlite:///{os.path.join(output_dir, 'mlruns.db')}  "
              f"(browse with: mlflow ui --backend-store-uri sqlite:///{os.path.join(output_dir, 'mlruns.db')})")
        print("Evaluate it on the test split (from any folder):\n  "
              + command_line(demo.bundle, ["train.json", "evaluate.json"], output_dir=output_dir))
        print("Predict a folder of images with it:\n  "
              + command_line(demo.bundle, "inference.json", output_dir=output_dir, input_dir=data))
    return code

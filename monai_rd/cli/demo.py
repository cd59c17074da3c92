"""Write a small synthetic dataset in the exact layout of a real one and train its bundle on it (CPU, minutes)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from collections.abc import Callable
from typing import NamedTuple

from ..bundle import bundle_root
from ..data import synthetic

HELP = "try RD without data: synthetic images in a real dataset's layout, that dataset's bundle, a few epochs"


class DemoDataset(NamedTuple):
    """A bundle and its synthetic data writer ``writer(folder, n, size, seed) -> dataset_dir``."""

    bundle: str
    writer: Callable[[str, int, int, int], str]


#: ``--dataset`` name -> its bundle and synthetic writer (``n`` images per class, or patients for ChestX-ray14)
DEMO_DATASETS = {
    "busi": DemoDataset(
        "rd_busi", lambda f, n, size, seed: synthetic.make_busi_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "isic": DemoDataset(
        "rd_isic", lambda f, n, size, seed: synthetic.make_isic2018_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "covid": DemoDataset(
        "rd_covid", lambda f, n, size, seed: synthetic.make_covid_ct_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "btc": DemoDataset(
        "rd_btc",
        lambda f, n, size, seed: synthetic.make_btc_like(
            f, n_train_per_class=n, n_test_per_class=max(1, n // 4), size=size, seed=seed
        ),
    ),
    "chestxray": DemoDataset(
        "rd_chestxray", lambda f, n, size, seed: synthetic.make_chestxray14_like(f, n_patients=n, size=size, seed=seed)
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="busi", choices=sorted(DEMO_DATASETS),
                        help="whose layout and bundle to use (default busi)")
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
    return code

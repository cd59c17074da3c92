"""Try RD offline in minutes: synthetic images in a real dataset's layout, a teacher pretrained on a synthetic
source modality, that dataset's bundle run student-only and with RD, both scored on held-out images.

Cost (defaults, BUSI layout, 48 px), measured: 3.5 minutes on 2 free CPU cores the first time (teacher
pretraining 82 s of it), 9.6 minutes on 2 busy ones; a second run in the same --workdir reuses the teacher. Each
long phase prints a line per epoch with the time left. The teacher
is synthetic (coloured shapes), not one of the paper's foundation models: see docs/teachers.md for those.
"""

from __future__ import annotations

import argparse

HELP = "try RD offline: a synthetic source-pretrained teacher, a dataset's bundle, student-only vs RD, held-out scores"

#: the synthetic layouts (``monai_rd.experiments.demo.DEMO_DATASETS``), listed here so that ``--help`` imports nothing
DATASETS = ("btc", "busi", "chestxray", "covid", "isic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", default="busi", choices=DATASETS, help="whose layout and bundle to use (default busi)"
    )
    parser.add_argument(
        "--workdir",
        default="rd_demo",
        help="folder for teacher/, data/, heldout/, outputs/ (suffixed _<dataset> for other datasets)",
    )
    parser.add_argument(
        "--images_per_class",
        type=int,
        default=40,
        help="training+validation images per class (patients for chestxray; default 40)",
    )
    parser.add_argument("--heldout_per_class", type=int, default=30, help="held-out images per class (default 30)")
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--max_epochs", type=int, default=15)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument(
        "--teacher_arch",
        default="resnet18",
        help="torchvision architecture of the source-pretrained teacher (default resnet18)",
    )
    parser.add_argument(
        "--source_images", type=int, default=1200, help="source-modality images to pretrain on (default 1200)"
    )
    parser.add_argument("--source_epochs", type=int, default=8, help="source pretraining epochs (default 8)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from monai_rd.experiments.demo import DemoSettings, run_demo

    settings = DemoSettings(**{k: getattr(args, k) for k in DemoSettings._fields})
    try:
        run_demo(settings)
    except RuntimeError as e:
        print(f"monai-rd demo: {e}")
        return 1
    return 0

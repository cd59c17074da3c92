"""Fetch only the teacher a bundle run needs into the bundle's ``models/`` (its ``large_files.yml`` entry), with a
progress bar. ``monai-rd fetch-teacher rd_busi`` fetches the bundle's default teacher; ``--teacher NAME`` another
one listed there. Offline or on a failed download it ends with one line saying where to put the file by hand.
"""

from __future__ import annotations

import argparse
import sys

HELP = "download only the teacher a bundle run needs (its large_files.yml entry) into the bundle's models/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="an installed bundle's name (rd_busi) or a bundle folder (a copy)")
    parser.add_argument(
        "--teacher",
        action="append",
        default=None,
        help="teacher id (e.g. lvmmed_resnet50; repeatable); default: the bundle's own teacher",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import os

    from monai_rd.bundle.fetch import FetchError, fetch_teacher
    from monai_rd.bundle.paths import bundle_root

    try:
        root = os.path.abspath(args.bundle) if os.path.isdir(args.bundle) else bundle_root(args.bundle)
        for teacher in args.teacher or [None]:
            print(f"{fetch_teacher(root, teacher, progress=not args.no_progress)}")
    except (FetchError, FileNotFoundError) as e:
        print(f"monai-rd fetch-teacher: {e}", file=sys.stderr)
        return 1
    return 0

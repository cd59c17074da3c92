"""CI's disk: refuse to start the tests without room for them, and measure how much room they took.

    python .ci/disk.py check               # exit 1 when the temp folder has less free space than the tests need
    python .ci/disk.py watch PEAK_FILE     # until killed: every few seconds, write the peak growth (GB) to PEAK_FILE

The tests write under the temp folder (pytest's ``pytest-of-<user>``). What they need is
``[tool.monai_rd.ci] min_free_disk_gb`` in pyproject.toml, about twice the peak a run measured (docs/results.md#ci-time).
A full disk fails dozens of unrelated tests at once (stop 35: ``OSError: [Errno 28] No space left on device``); this
check fails first, with the folder and what to remove.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import sys
import tempfile
import time
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GB = 1024**3


def required_gb() -> float:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return float(tomllib.load(f)["tool"]["monai_rd"]["ci"]["min_free_disk_gb"])


def folder_size(path: str) -> int:
    """Bytes under ``path`` (files only; unreadable entries are counted as 0)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def check(temp_dir: str, need_gb: float) -> int:
    free_gb = shutil.disk_usage(temp_dir).free / GB
    if free_gb >= need_gb:
        print(f"disk: {free_gb:.1f} GB free under {temp_dir}, the tests need {need_gb:g} GB")
        return 0
    old = os.path.join(temp_dir, f"pytest-of-{getpass.getuser()}")
    hint = f" ({folder_size(old) / GB:.1f} GB of it in {old}: earlier test runs)" if os.path.isdir(old) else ""
    print(f"ERROR: only {free_gb:.1f} GB free under {temp_dir}{hint}; the tests need {need_gb:g} GB "
          f"(pyproject.toml [tool.monai_rd.ci] min_free_disk_gb). Free space there (e.g. `rm -rf {old}`) or point "
          f"TMPDIR at a larger disk, then run CI again.", file=sys.stderr)  # fmt: skip
    return 1


def watch(temp_dir: str, peak_file: str, interval_s: float = 5.0) -> None:
    """Write the peak growth of the used space (GB, since the start) to ``peak_file``, atomically, until killed."""
    start = peak = shutil.disk_usage(temp_dir).used
    used = start
    while True:
        if used >= peak:
            peak = used
            with open(f"{peak_file}.tmp", "w") as f:
                f.write(f"{(peak - start) / GB:.1f}\n")
            os.replace(f"{peak_file}.tmp", peak_file)
        time.sleep(interval_s)
        used = shutil.disk_usage(temp_dir).used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="exit 1 when the temp folder has less free space than the tests need")
    watch_parser = sub.add_parser("watch", help="write the peak growth of used space to a file, until killed")
    watch_parser.add_argument("peak_file")
    watch_parser.add_argument("--interval_s", type=float, default=5.0, help="seconds between two readings")
    args = parser.parse_args(argv)
    temp_dir = tempfile.gettempdir()
    if args.command == "check":
        return check(temp_dir, required_gb())
    watch(temp_dir, args.peak_file, args.interval_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())

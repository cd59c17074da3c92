"""Run RD, KD and the student alone on generated task families and report RD's gain (issue 29).

Example (the held-out families, three seeds; resumable, and two processes can share it with ``--shard``)::

    monai-rd task-families --split held_out --tasks_per_family 2 --seeds 0 1 2 --workdir runs/families
    monai-rd task-families --workdir runs/families --report_only

See :mod:`monai_rd.experiments.task_families` for what a family, a task and a setting are.
"""

from __future__ import annotations

import argparse

HELP = "RD vs KD vs the student alone on generated task families (tune / held-out), resumable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="state, data, teachers and reports go here")
    parser.add_argument("--split", choices=("tune", "held_out"), default="held_out", help="which families to run")
    parser.add_argument("--tasks_per_family", type=int, default=2, help="tasks (image seeds) per family")
    parser.add_argument("--families", nargs="+", default=None, help="only these families of --split (names)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds per task")
    parser.add_argument("--settings", nargs="+", default=None, help="settings to run (default: all of SETTINGS)")
    parser.add_argument("--image_size", type=int, default=32, help="image side (px)")
    parser.add_argument("--batch_size", type=int, default=4, help="the bundle's batch_size")
    parser.add_argument("--test_per_class", type=int, default=80, help="held-out images per class of each task")
    parser.add_argument("--source_images", type=int, default=600, help="source images the teachers pretrain on")
    parser.add_argument("--max_epochs", type=int, default=None, help="replace every family's budget (smoke runs)")
    parser.add_argument("--shard", default="0/1", metavar="K/N", help="run every N-th run from the K-th")
    parser.add_argument("--report_only", action="store_true", help="only write the report of what is recorded")


def run(args: argparse.Namespace) -> int:
    import torch

    from monai_rd.experiments import task_families as tf

    try:
        k, n = (int(v) for v in args.shard.split("/"))
    except ValueError:
        raise SystemExit(f"--shard must be K/N (for example 0/2), got {args.shard!r}.") from None
    if not args.report_only:
        torch.set_num_threads(1)  # runs are small; processes share the cores (--shard)
        tf.run_benchmark(
            args.workdir, split=args.split, tasks_per_family=args.tasks_per_family, seeds=args.seeds,
            settings=args.settings or tuple(tf.SETTINGS), image_size=args.image_size, batch_size=args.batch_size,
            test_per_class=args.test_per_class, source_images=args.source_images, max_epochs=args.max_epochs,
            shard=(k, n), family_names=args.families,
        )  # fmt: skip
    records = tf.read_states(args.workdir)
    if not records:
        raise SystemExit(f"nothing recorded under {args.workdir}: run without --report_only first.")
    paths = tf.write_report(records, args.workdir)
    with open(paths["md"]) as f:
        print(f.read())
    print(f"Wrote {paths['csv']}, {paths['md']} and {paths['png']}.")
    return 0

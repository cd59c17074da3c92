"""Run RD, KD and the student alone on generated task families and report RD's gain (issue 29).

Example (the held-out families, three seeds; resumable, and two processes can share it with ``--shard``)::

    monai-rd task-families --split held_out --tasks_per_family 2 --seeds 0 1 2 --workdir runs/families
    monai-rd task-families --workdir runs/families --report_only --score_teachers

``--runs_csv`` adds the runs of reports written before (their ``runs.csv``) to what the workdir records, so a new
setting run in a fresh workdir is reported beside the published ones.

``--score_teachers`` scores each recorded task's teacher on the task's training split with ``monai-rd rank-teachers``
(kept under ``<workdir>/scores/<task>``, one MLflow store ``<workdir>/scores/mlruns.db``) and adds the rank
correlation between each score and RD's gain to the report. See :mod:`monai_rd.experiments.task_families` for what a
family, a task and a setting are.
"""

from __future__ import annotations

import argparse
import os

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
    parser.add_argument("--runs_csv", nargs="+", default=[], metavar="CSV",
                        help="also report the runs of these runs.csv files (reports of this command, such as a "
                             "published one); a run the workdir records too is taken from the workdir")  # fmt: skip
    parser.add_argument("--score_teachers", action="store_true",
                        help="score each task's teacher with rank-teachers and correlate the scores with RD's gain")  # fmt: skip


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
    records = {}
    for path in args.runs_csv:
        if not os.path.isfile(path):
            raise SystemExit(f"--runs_csv {path}: no such file (give a runs.csv that task-families wrote).")
        records.update(tf.read_runs_csv(path))
    records.update(tf.read_states(args.workdir))
    if not records:
        raise SystemExit(f"nothing recorded under {args.workdir}: run without --report_only first.")
    scores = score_teachers(args, records) if args.score_teachers else None
    paths = tf.write_report(records, args.workdir, scores=scores)
    with open(paths["md"]) as f:
        print(f.read())
    print(f"Wrote {', '.join(paths.values())}.")
    return 0


def score_teachers(args: argparse.Namespace, records: dict[str, dict]) -> dict[str, dict[str, float]]:
    """``{task: {score: value}}``: ``monai-rd rank-teachers`` on each recorded task's training split with its
    teacher (the task's images and teacher are rewritten from their seeds if missing); a task scored before is read
    back from its ``rank_teachers.csv``."""
    import csv

    from monai_rd.cli import rank_teachers
    from monai_rd.experiments import task_families as tf

    names = sorted({r["task"] for r in records.values()})
    tracking = "sqlite:///" + os.path.join(os.path.abspath(args.workdir), "scores", "mlruns.db")
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(names, 1):
        task = tf.task_by_name(name)
        out_dir = os.path.join(args.workdir, "scores", name)
        table = os.path.join(out_dir, "rank_teachers.csv")
        if not os.path.isfile(table):
            train, _ = tf.write_task(task, os.path.join(args.workdir, "data", name), args.image_size,
                                     args.test_per_class)  # fmt: skip
            weights = tf.task_teacher(args.workdir, task.family.teacher, args.source_images, args.image_size)["weights"]
            parser = argparse.ArgumentParser()
            rank_teachers.add_arguments(parser)
            rank_teachers.run(parser.parse_args([
                "--config_file", tf.train_config(),
                "--dataset_dir", train, "--teachers", tf.TEACHER, "--teacher_weights", f"{tf.TEACHER}={weights}",
                "--image_size", str(args.image_size), "--output_dir", out_dir, "--tracking_uri", tracking,
                "--experiment_name", "task_families_scores", "--no_progress", "--num_workers", "0",
            ]))  # fmt: skip
        with open(table, newline="") as f:
            row = next(csv.DictReader(f))
        out[name] = {score: float(row[score]) for score in tf.SCORES}
        print(f"[{i}/{len(names)}] {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in out[name].items()), flush=True)
    return out

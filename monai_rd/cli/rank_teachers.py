"""Rank candidate teachers for a dataset by the transferability of their frozen features (before any training).

Example::

    monai-rd rank-teachers --bundle rd_busi --dataset_dir /data/Dataset_BUSI_with_GT \\
        --teachers pmc_clip_rn50 radimagenet_resnet50 torchvision:resnet50 \\
        --teacher_weights pmc_clip_rn50=models/pmc_clip_checkpoint.pt radimagenet_resnet50=models/ResNet50.pt \\
        torchvision:resnet50=imagenet --output_dir runs/rank_busi

The bundle's own datalist (its indexer, split and seed) gives the training split; each teacher, built by the
bundle's ``teacher_def`` with ``--teacher``/``--teacher_weights`` set, runs over it with the bundle's evaluation
preprocessing (no augmentation, one view) through the feature cache (``<output_dir>/feature_cache/<teacher>``, so a
second run reuses the features). Its pooled features are scored by
:mod:`monai_rd.metrics.transferability` (LogME, a cross-validated linear probe, k-NN; bootstrap intervals). Writes
``rank_teachers.csv`` and ``rank_teachers.png`` (error bars = the intervals) to ``output_dir``, prints the table
sorted by LogME and logs one MLflow run (params, per-teacher metrics, both files; one nested run per teacher).

These scores rank how well each teacher's features separate the classes; whether RD then gains over the student
trained alone is a different quantity: on 36 generated held-out tasks their rank correlation with it was -0.07 to
-0.42 (``monai-rd task-families --score_teachers``, docs/teachers.md).
"""

from __future__ import annotations

import argparse
import os
import re

HELP = "score candidate teachers' features on a dataset (LogME, linear probe, k-NN) before distilling"

COLUMNS = [
    "rank", "teacher", "weights", "weights_source", "random_weights", "num_items", "feature_dim",
    "logme", "logme_ci_low", "logme_ci_high",
    "probe_accuracy", "probe_accuracy_ci_low", "probe_accuracy_ci_high", "probe_fold_accuracies",
    "knn_accuracy", "knn_accuracy_ci_low", "knn_accuracy_ci_high", "feature_seconds", "score_seconds",
]  # fmt: skip
_SCORES = (("logme", "logme"), ("linear_probe", "probe_accuracy"), ("knn", "knn_accuracy"))
#: the numeric columns logged as MLflow metrics
METRICS = [f"{c}{s}" for _, c in _SCORES for s in ("", "_ci_low", "_ci_high")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", default="rd_busi", help="bundle whose datalist and preprocessing are used")
    parser.add_argument("--config_file", default=None, help="a bundle train.json instead of --bundle's")
    parser.add_argument("--dataset_dir", required=True, help="the dataset folder, as the bundle takes it")
    parser.add_argument("--teachers", nargs="+", required=True, help="teacher registry names (docs/teachers.md)")
    parser.add_argument("--teacher_weights", nargs="+", default=[], metavar="NAME=SPEC",
                        help="weights per teacher: NAME=<file | hf-hub:... | imagenet | random>; a bare SPEC applies "
                             "to every teacher without its own (default: the bundle's teacher_weights for its own "
                             "teacher, nothing for the others)")  # fmt: skip
    parser.add_argument("--image_size", type=int, default=None, help="override the bundle's image_size")
    parser.add_argument(
        "--max_items", type=int, default=None, help="score at most N training images (a seeded random subset)"
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds of the probe and k-NN")
    parser.add_argument("--k", type=int, default=5, help="neighbours of the k-NN score")
    parser.add_argument("--n_resamples", type=int, default=200, help="bootstrap resamples of each interval")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval confidence")
    parser.add_argument("--seed", type=int, default=None, help="override the bundle's seed (splits, folds, bootstrap)")
    parser.add_argument("--batch_size", type=int, default=32, help="images per teacher forward pass")
    parser.add_argument("--num_workers", type=int, default=None, help="DataLoader workers (default: from the CPUs)")
    parser.add_argument("--output_dir", default="rank_teachers", help="where the CSV, plot, cache and MLflow go")
    parser.add_argument("--tracking_uri", default=None, help="MLflow store (default sqlite:///<output_dir>/mlruns.db)")
    parser.add_argument("--experiment_name", default="rank_teachers", help="MLflow experiment")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("ID", "VALUE"),
        help="override any bundle config id (VALUE parsed as JSON when possible); repeatable",
    )


def weights_by_teacher(teachers: list[str], specs: list[str]) -> dict[str, str | None]:
    """``NAME=SPEC`` entries (and at most one bare ``SPEC`` for the rest) -> ``{teacher: spec or None}``."""
    out: dict[str, str | None] = {t: None for t in teachers}
    default = None
    for entry in specs:
        name, sep, spec = entry.partition("=")
        if sep and name in out:
            out[name] = spec
        elif sep and not os.path.exists(entry):
            raise SystemExit(f"--teacher_weights {entry!r} names {name!r}, which is not in --teachers {teachers}: "
                             f"write NAME=SPEC with NAME one of the teachers.")  # fmt: skip
        elif default is not None:
            raise SystemExit(f"--teacher_weights has two bare specs ({default!r}, {entry!r}): write NAME=SPEC.")
        else:
            default = entry
    return {t: (s if s is not None else default) for t, s in out.items()}


def slug(text: str) -> str:
    """A file and MLflow-key friendly form of a teacher name (``torchvision:resnet50`` -> ``torchvision_resnet50``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _pooled(cache, n: int):
    """``[N, D]`` float64 features of view 0 of every item; feature maps ``[D, h, w]`` are averaged to ``[D]``."""
    import numpy as np

    feats = np.stack([cache.features(i, 0) for i in range(n)]).astype(np.float64)
    return feats.reshape(n, feats.shape[1], -1).mean(axis=2) if feats.ndim > 2 else feats


def _fmt(value: float, low: float, high: float, pct: bool) -> str:
    import math

    if math.isnan(value):
        return "n/a"
    if pct:
        return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def table(rows: list[dict]) -> str:
    """The ranking as a fixed-width text table (rows already sorted)."""
    head = ["#", "teacher", "weights", "LogME [CI]", "probe acc % [CI]", "kNN acc % [CI]"]
    body = [
        [str(r["rank"]), r["teacher"], ("RANDOM (not a real teacher)" if r["random_weights"] else r["weights"]),
         _fmt(r["logme"], r["logme_ci_low"], r["logme_ci_high"], False),
         _fmt(r["probe_accuracy"], r["probe_accuracy_ci_low"], r["probe_accuracy_ci_high"], True),
         _fmt(r["knn_accuracy"], r["knn_accuracy_ci_low"], r["knn_accuracy_ci_high"], True)]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(rows: list[dict], path: str, title: str) -> str:
    """Bar plot of the three scores per teacher with their intervals as error bars; random teachers hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["teacher"] + ("\n(RANDOM)" if r["random_weights"] else "") for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(4 + 1.6 * len(rows) * 1.5, 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], (("logme", "LogME"), ("probe_accuracy", "linear probe accuracy"),
                                         ("knn_accuracy", "k-NN accuracy"))):  # fmt: skip
        value = np.array([r[key] for r in rows], dtype=float)
        err = np.array([[v - r[f"{key}_ci_low"], r[f"{key}_ci_high"] - v] for v, r in zip(value, rows)]).T
        bars = ax.bar(range(len(rows)), np.nan_to_num(value), yerr=np.nan_to_num(err), capsize=4, color="C0")
        for bar, r in zip(bars, rows):
            if r["random_weights"]:
                bar.set_facecolor("0.85")
                bar.set_edgecolor("0.3")
                bar.set_hatch("//")
        ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _log_mlflow(args, rows: list[dict], params: dict, files: list[str]) -> str:
    import mlflow

    uri = args.tracking_uri or "sqlite:///" + os.path.join(os.path.abspath(args.output_dir), "mlruns.db")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(args.experiment_name)
    with mlflow.start_run(run_name=f"rank_teachers_{params['bundle']}") as parent:
        mlflow.log_params(params)
        for r in rows:
            key = slug(r["teacher"])
            mlflow.log_metrics({f"{key}.{name}": float(r[name]) for name in METRICS if r[name] == r[name]})
            with mlflow.start_run(run_name=r["teacher"], nested=True):
                mlflow.log_params({"teacher": r["teacher"], "weights": r["weights"],
                                   "weights_source": r["weights_source"], "random_weights": r["random_weights"],
                                   "num_items": r["num_items"], "feature_dim": r["feature_dim"]})  # fmt: skip
                extra = ["rank", "feature_seconds", "score_seconds"]
                mlflow.log_metrics({name: float(r[name]) for name in METRICS + extra if r[name] == r[name]})
                mlflow.set_tag("random_weights", str(r["random_weights"]).lower())
        for path in files:
            mlflow.log_artifact(path)
        run_id = parent.info.run_id
    print(f"MLflow: run {run_id} in {uri} (experiment {args.experiment_name!r})", flush=True)
    return run_id


def run(args: argparse.Namespace) -> int:
    import csv
    import time

    import numpy as np
    from monai.utils import set_determinism

    from monai_rd.bundle import bundle_root
    from monai_rd.cli.cache_features import BUNDLE_IDS, _value, bundle_teacher, read_bundle
    from monai_rd.data.feature_cache import FeatureCache
    from monai_rd.metrics.transferability import transferability_scores

    config = args.config_file or os.path.join(bundle_root(args.bundle), "configs", "train.json")
    if not os.path.isfile(config):
        raise SystemExit(
            f"Bundle config {config!r} does not exist: pass --bundle <name> or --config_file <train.json>."
        )
    out_dir = os.path.abspath(args.output_dir)
    os.makedirs(out_dir, exist_ok=True)
    base = {k: _value(v) for k, v in args.set}
    base.update(dataset_dir=args.dataset_dir, output_dir=out_dir)
    for name in ("image_size", "seed"):
        if getattr(args, name) is not None:
            base[name] = getattr(args, name)
    weights = weights_by_teacher(args.teachers, args.teacher_weights)
    first = read_bundle(config, base)
    bundle_teacher_name = first.get_parsed_content(BUNDLE_IDS["teacher"])
    seed = int(first.get_parsed_content(BUNDLE_IDS["seed"])) if BUNDLE_IDS["seed"] in first else 0
    set_determinism(seed=seed)
    datalist = first.get_parsed_content(BUNDLE_IDS["datalist"])
    items = list(datalist["training"])
    if args.max_items is not None and len(items) > args.max_items:
        keep = np.sort(np.random.default_rng(seed).permutation(len(items))[: args.max_items])
        items = [items[i] for i in keep]
    labels = np.asarray([item["label"] for item in items])
    print(f"{len(items)} training images of {args.dataset_dir} ({args.bundle if not args.config_file else config}), "
          f"{len(args.teachers)} teachers", flush=True)  # fmt: skip

    rows = []
    for name in args.teachers:
        overrides = {**base, BUNDLE_IDS["teacher"]: name}
        if weights[name] is not None:
            overrides[BUNDLE_IDS["teacher_weights"]] = weights[name]
        elif name != bundle_teacher_name:
            raise SystemExit(
                f"No weights for teacher {name!r}: pass --teacher_weights {name}=<file | hf-hub:org/repo/file | "
                f"imagenet | random> (the bundle's teacher_weights belong to its own teacher {bundle_teacher_name!r})."
            )
        parser = read_bundle(config, overrides)
        teacher = bundle_teacher(parser)
        record = teacher["record"]
        started = time.perf_counter()
        cache = FeatureCache(
            os.path.join(out_dir, "feature_cache", f"{slug(name)}_{record.sha256[:12]}"), items,
            parser.get_parsed_content(BUNDLE_IDS["val_transform"]), name, record.path, teacher["options"],
        )  # fmt: skip
        cache.build(teacher["build"], views=1, dtype="float32", batch_size=args.batch_size,
                    num_workers=args.num_workers, device=teacher["device"], progress=not args.no_progress)  # fmt: skip
        features = _pooled(cache, len(items))
        feature_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = transferability_scores(features, labels, folds=args.folds, k=args.k, seed=seed,
                                        n_resamples=args.n_resamples, confidence=args.confidence)  # fmt: skip
        row = {
            "teacher": name,
            "weights": record.spec,
            "weights_source": record.source,
            "random_weights": record.source == "random",
            "num_items": len(items),
            "feature_dim": features.shape[1],
            "probe_fold_accuracies": " ".join(f"{a:.4f}" for a in scores["linear_probe"]["per_fold"]),
            "feature_seconds": round(feature_seconds, 2),
            "score_seconds": round(time.perf_counter() - started, 2),
        }
        for key, column in _SCORES:
            s = scores[key]
            row.update({column: s["value"], f"{column}_ci_low": s["ci_low"], f"{column}_ci_high": s["ci_high"]})
        rows.append(row)
        print(f"{name}: features {features.shape} in {feature_seconds:.1f} s, LogME {row['logme']:.4f}", flush=True)

    rows.sort(key=lambda r: -r["logme"])
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    csv_path = os.path.join(out_dir, "rank_teachers.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    png = plot(
        rows,
        os.path.join(out_dir, "rank_teachers.png"),
        f"{len(items)} training images, {args.folds}-fold CV, {int(100 * args.confidence)}% bootstrap intervals",
    )
    print(table(rows))
    if any(r["random_weights"] for r in rows):
        print("RANDOM marks a teacher with random weights (teacher_weights=random): a baseline, not a teacher.")
    print("These scores rank the teachers' features, not RD's gain over the student alone: on 36 generated tasks a "
          "higher LogME went with less gain over the student alone and more over KD (docs/teachers.md).")  # fmt: skip
    params = {"bundle": args.bundle if not args.config_file else config, "dataset_dir": args.dataset_dir,
              "teachers": ",".join(args.teachers), "num_items": len(items), "folds": args.folds, "k": args.k,
              "n_resamples": args.n_resamples, "confidence": args.confidence, "seed": seed,
              "image_size": first.get_parsed_content("image_size") if "image_size" in first else None}  # fmt: skip
    _log_mlflow(args, rows, params, [csv_path, png])
    print(f"Wrote {csv_path} and {png}")
    return 0

"""RD on tasks nobody tuned it for: generated, seeded families of classification tasks, each trained by a bundle.

A *family* fixes the four things that decide whether distilling helps (issue 29): how separable the target is
(:data:`SEPARABILITY`, the lesion contrast of :func:`monai_rd.data.synthetic.make_target_images`), the images per
class (:data:`IMAGES_PER_CLASS`), how much the teacher knows (:data:`TEACHER_KNOWLEDGE`: the epochs its source
pretraining ran, :func:`monai_rd.experiments.source_teacher.ensure_source_teacher`) and the step budget
(:data:`EPOCHS`). A *task* is a family and an index, which seeds its images. The families split in two on a
checkerboard over the four axes: ``tune`` (where settings may be chosen) and ``held_out`` (only reported); each axis
value appears in both halves.

Every run is the ``rd_clinical`` bundle's own ``train.json`` (its indexer and split, preprocessing, optimiser, loss
schedule, method registry and best-validation checkpoint), parsed and run in this process so that a run costs its
training rather than a new interpreter; ``is_not_rank0`` is set, which turns off what only rank 0 writes (MLflow,
reports, registry), not what trains or selects. The selected ``model.pt`` is scored on held-out images of the same
task (another seed) with the bundle's evaluation preprocessing (:func:`monai_rd.experiments.demo.score_heldout`).

Settings (:data:`SETTINGS`): the student alone, KD, RD at the bundle defaults, RD at the paper's settings (the
``rd`` row of ``grids/paper_table3.yaml`` and its full-width ``g``) and RD with the distillation gate, open on ties
(``rd_gate``) or closed on them (``rd_gate_strict``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SEPARABILITY",
    "IMAGES_PER_CLASS",
    "TEACHER_KNOWLEDGE",
    "EPOCHS",
    "SETTINGS",
    "Family",
    "Task",
    "families",
    "tasks",
    "train_config",
    "dataset_images_per_class",
    "write_task",
    "task_teacher",
    "run_one",
    "gate_pattern",
    "run_gate",
    "gate_summary",
    "run_benchmark",
    "read_states",
    "RUN_FIELDS",
    "read_runs_csv",
    "summarise",
    "task_by_name",
    "SCORES",
    "score_correlations",
    "write_report",
]

#: lesion contrast range of each separability level (closer to 1: subtler lesions)
SEPARABILITY: dict[str, tuple[float, float]] = {"clear": (0.35, 0.6), "mid": (0.55, 0.75), "subtle": (0.7, 0.85)}
#: training images per class; a task's folder holds :func:`dataset_images_per_class` per class, since the bundle keeps
#: its ``val_fraction`` and ``test_fraction`` of each class for validation and its own test split
IMAGES_PER_CLASS: tuple[int, ...] = (8, 20, 60)
#: teacher knowledge level -> epochs of source pretraining (colour shapes; the target's modality is never seen)
TEACHER_KNOWLEDGE: dict[str, int] = {"weak": 2, "strong": 8}
#: the step budget: the bundle's max_epochs (at the benchmark's batch of 4: 6, 15 or 45 steps an epoch)
EPOCHS: tuple[int, ...] = (15, 30)

#: what each setting sets over the bundle's defaults; every RD setting names its gate, so that a record keeps its
#: meaning when the bundles' default changes (``rd``: the bundles' RD before the gate became their default)
SETTINGS: dict[str, dict[str, Any]] = {
    "student": {"method": "student"},
    "kd": {"method": "kd"},
    "rd": {"method": "rd", "teacher_gate": False},
    "rd_paper": {
        "method": "rd",
        "loss_schedule": "paper",
        "teacher_trains_head": True,
        "teacher_warmup": False,
        "teacher_gate": False,
        "reprogrammer_budget": None,
    },
    # issue 29's remedy, the bundles' default since: KD and CKA only while the teacher branch is at least as good as
    # the student on the validation split (monai_rd.handlers.DistillationGate)
    "rd_gate": {"method": "rd", "teacher_gate": True},
    # the gate closed on ties: the teacher branch must classify more validation images correctly than the student
    # (a margin below one image of the largest validation split, 36 images)
    "rd_gate_strict": {"method": "rd", "teacher_gate": True, "method_options": {"teacher_gate_margin": -0.01}},
}
BUNDLE = "rd_clinical"
TEACHER_ARCH = "resnet18"
#: the teacher as the bundle's ``teacher`` id (and ``monai-rd rank-teachers --teachers``) names it
TEACHER = f"torchvision:{TEACHER_ARCH}"
STUDENT = "resnet18"


@dataclass(frozen=True)
class Family:
    """One point of the four axes; ``split`` is ``tune`` or ``held_out`` (a checkerboard over the axes)."""

    separability: str
    images_per_class: int
    teacher: str
    epochs: int

    @property
    def name(self) -> str:
        return f"{self.separability}-n{self.images_per_class}-{self.teacher}-e{self.epochs}"

    @property
    def split(self) -> str:
        parity = (
            list(SEPARABILITY).index(self.separability)
            + IMAGES_PER_CLASS.index(self.images_per_class)
            + list(TEACHER_KNOWLEDGE).index(self.teacher)
            + EPOCHS.index(self.epochs)
        )
        return "held_out" if parity % 2 else "tune"


@dataclass(frozen=True)
class Task:
    """Task ``index`` of ``family``; its images are fixed by :attr:`seed` (training) and ``seed + 1`` (held-out)."""

    family: Family
    index: int

    @property
    def name(self) -> str:
        return f"{self.family.name}-t{self.index}"

    @property
    def seed(self) -> int:
        return zlib.crc32(self.name.encode()) % 1_000_000 * 2


def families(split: str | None = None) -> list[Family]:
    """Every family (``split`` None) or those of one split (``"tune"`` or ``"held_out"``)."""
    if split not in (None, "tune", "held_out"):
        raise ValueError(f"split must be 'tune', 'held_out' or None, got {split!r}.")
    out = [Family(*axes) for axes in itertools.product(SEPARABILITY, IMAGES_PER_CLASS, TEACHER_KNOWLEDGE, EPOCHS)]
    return [f for f in out if split is None or f.split == split]


def tasks(split: str | None, tasks_per_family: int) -> list[Task]:
    """``tasks_per_family`` tasks of every family of ``split``."""
    if tasks_per_family < 1:
        raise ValueError(f"tasks_per_family must be >= 1, got {tasks_per_family}.")
    return [Task(f, i) for f in families(split) for i in range(tasks_per_family)]


def train_config() -> str:
    """Path of the ``train.json`` every run of the benchmark parses (:data:`BUNDLE`'s)."""
    from monai_rd.bundle import bundle_root

    return os.path.join(bundle_root(BUNDLE), "configs", "train.json")


def dataset_images_per_class(train_per_class: int) -> int:
    """Images per class to write so that the bundle's three-way split leaves ``train_per_class`` for training (its
    ``val_fraction`` and ``test_fraction`` read from its ``train.json``)."""
    import json

    with open(train_config()) as f:
        config = json.load(f)
    held = float(config["val_fraction"]) + float(config["test_fraction"])
    return int(np.ceil(train_per_class / (1.0 - held) - 1e-9))


def write_task(task: Task, folder: str, image_size: int, test_per_class: int) -> tuple[str, str]:
    """Write ``task``'s images as PNG files, a folder per class (``rd_clinical``'s layout): ``<folder>/train`` with
    :func:`dataset_images_per_class` per class and ``<folder>/heldout`` with ``test_per_class`` per class. Written
    once (a marker file records completion); returns both folders."""
    from PIL import Image

    from monai_rd.data.synthetic import TARGET_CLASSES, make_target_images
    from monai_rd.utils import atomic_write_text

    train, heldout = os.path.join(folder, "train"), os.path.join(folder, "heldout")
    marker = os.path.join(folder, ".written")
    if os.path.isfile(marker):
        return train, heldout
    contrast = SEPARABILITY[task.family.separability]
    for root, n, seed in (
        (train, dataset_images_per_class(task.family.images_per_class), task.seed),
        (heldout, test_per_class, task.seed + 1),
    ):
        shutil.rmtree(root, ignore_errors=True)
        x, y = make_target_images(n, image_size, seed, contrast=contrast)
        for i, (image, label) in enumerate(zip(x, y)):
            cls = os.path.join(root, TARGET_CLASSES[int(label)])
            os.makedirs(cls, exist_ok=True)
            Image.fromarray(np.round(image[0].numpy() * 255).astype(np.uint8)).save(os.path.join(cls, f"{i:04d}.png"))
    atomic_write_text(marker, task.name + "\n")
    return train, heldout


def task_teacher(
    workdir: str, level: str, source_images: int, image_size: int, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The source teacher of knowledge ``level`` under ``<workdir>/teachers/<level>``: pretrained on first use
    (:func:`monai_rd.experiments.source_teacher.ensure_source_teacher`), reused after; ``["weights"]`` is its file."""
    from monai_rd.experiments.source_teacher import ensure_source_teacher

    return ensure_source_teacher(os.path.join(workdir, "teachers", level), TEACHER_ARCH, source_images, image_size,
                                 TEACHER_KNOWLEDGE[level], log=log)  # fmt: skip


def run_one(
    task: Task,
    setting: str,
    seed: int,
    data: tuple[str, str],
    teacher_weights: str,
    output_dir: str,
    image_size: int = 32,
    batch_size: int = 4,
    max_epochs: int | None = None,
) -> dict[str, Any]:
    """Train ``setting`` on ``task`` with the ``rd_clinical`` bundle in this process. Returns ``"accuracy"``, the
    held-out accuracy (in ``[0, 1]``) of the checkpoint the bundle selected on its validation split, and ``"gate"``,
    the distillation gate's decision after each validation (``[epoch, teacher branch accuracy, student accuracy,
    open]``; ``None`` for a setting without the gate). ``output_dir`` is removed after."""
    from monai.bundle import ConfigParser

    from monai_rd.experiments.demo import score_heldout

    if setting not in SETTINGS:
        raise ValueError(f"Unknown setting {setting!r}; choose from {list(SETTINGS)}.")
    train, heldout = data
    config = train_config()
    parser = ConfigParser()
    parser.read_config(config)
    parser.read_meta(os.path.join(os.path.dirname(config), "metadata.json"))
    values = {
        "dataset_dir": train,
        "output_dir": output_dir,
        "image_size": image_size,
        "max_epochs": max_epochs or task.family.epochs,
        "batch_size": batch_size,
        "num_workers": 0,
        "progress_bar": False,
        "teacher": TEACHER,
        "teacher_weights": teacher_weights,
        "student": STUDENT,
        "seed": seed,
        "is_not_rank0": True,  # no MLflow, reports or registry per run; training and selection are unchanged
        **SETTINGS[setting],
    }
    for key, value in values.items():
        parser[key] = value
    os.makedirs(output_dir, exist_ok=True)
    try:
        parser.get_parsed_content("initialize", lazy=True)
        parser.get_parsed_content("run", lazy=True)
        model = os.path.join(output_dir, "model.pt")
        scored = score_heldout(BUNDLE, heldout, model, STUDENT, image_size, os.path.join(output_dir, "heldout.json"))
        gate = parser.get_parsed_content("distillation_gate")
        history = [[h["epoch"], round(h["teacher_accuracy"], 4), round(h["student_accuracy"], 4), h["open"]]
                   for h in gate.history]  # fmt: skip
        return {"accuracy": scored["accuracy"], "gate": history if gate.active else None}
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)


def _key(task: Task, setting: str, seed: int) -> str:
    return f"{task.name}/{setting}/seed{seed}"


def read_states(workdir: str) -> dict[str, dict]:
    import glob
    import json

    records: dict[str, dict] = {}
    for path in sorted(glob.glob(os.path.join(workdir, "state*.json"))):
        with open(path) as f:
            records.update(json.load(f))
    return records


def run_benchmark(
    workdir: str,
    split: str = "held_out",
    tasks_per_family: int = 2,
    seeds: Sequence[int] = (0, 1, 2),
    settings: Sequence[str] = tuple(SETTINGS),
    image_size: int = 32,
    batch_size: int = 4,
    test_per_class: int = 80,
    source_images: int = 600,
    max_epochs: int | None = None,
    shard: tuple[int, int] = (0, 1),
    family_names: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Run every (task, setting, seed) of ``split`` not recorded yet; returns all records read back.

    Each finished run is recorded at once (atomically) in ``<workdir>/state[_<k>].json``, so a stopped run resumes
    where it stopped. ``shard=(k, n)`` runs every ``n``-th run from the ``k``-th, so ``n`` processes can share the
    work (each keeps its own state file). ``family_names``: only these families of ``split``. ``max_epochs``
    replaces every family's budget (for smoke runs only).
    """
    from monai_rd.utils import atomic_write_json

    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"Unknown settings {unknown}; choose from {list(SETTINGS)}.")
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard must be k/n with 0 <= k < n, got {k}/{n}.")
    state_file = os.path.join(workdir, "state.json" if n == 1 else f"state_{k}.json")
    os.makedirs(workdir, exist_ok=True)
    done = read_states(workdir)
    mine = _read_states_file(state_file)  # what this process's state file holds; ``done``: every process's
    chosen = tasks(split, tasks_per_family)
    if family_names is not None:
        known = {t.family.name for t in chosen}
        missing = sorted(set(family_names) - known)
        if missing:
            raise ValueError(f"families {missing} are not in the {split!r} split; it has {sorted(known)}.")
        chosen = [t for t in chosen if t.family.name in set(family_names)]
    runs = [(t, s, seed) for t in chosen for seed in seeds for s in settings]
    todo = [r for i, r in enumerate(runs) if i % n == k and _key(*r) not in done]
    log(f"task families ({split}): {len(runs)} runs, {len(done)} recorded, {len(todo)} to run in this process")
    teachers: dict[str, dict] = {}
    start = time.time()
    for i, (task, setting, seed) in enumerate(todo, 1):
        level = task.family.teacher
        if level not in teachers:
            teachers[level] = task_teacher(workdir, level, source_images, image_size, log=log)
        data = write_task(task, os.path.join(workdir, "data", task.name), image_size, test_per_class)
        t0 = time.time()
        result = run_one(task, setting, seed, data, teachers[level]["weights"], os.path.join(workdir, "run", str(k)),
                         image_size=image_size, batch_size=batch_size, max_epochs=max_epochs)  # fmt: skip
        acc = result["accuracy"]
        mine[_key(task, setting, seed)] = {
            "task": task.name, "family": task.family.name, "split": task.family.split, "setting": setting,
            "seed": seed, "accuracy": acc, "seconds": round(time.time() - t0, 1),
            "teacher_source_accuracy": teachers[level]["source_accuracy"],
            **({"gate": result["gate"]} if result["gate"] is not None else {}),
        }  # fmt: skip
        atomic_write_json(state_file, mine)
        left = (time.time() - start) / i * (len(todo) - i)
        log(f"[{i}/{len(todo)}] {_key(task, setting, seed)}: {100 * acc:.1f} % ({time.time() - t0:.0f} s; "
            f"about {left / 60:.0f} min left)")  # fmt: skip
    return read_states(workdir)


#: one run's record as :func:`run_benchmark` keeps it, in ``runs.csv``'s column order, with the type each reads back as
RUN_FIELDS: dict[str, type] = {"task": str, "family": str, "split": str, "setting": str, "seed": int, "accuracy": float,
                               "seconds": float, "teacher_source_accuracy": float}  # fmt: skip


def read_runs_csv(path: str) -> dict[str, dict]:
    """The records of a ``runs.csv`` that :func:`write_report` wrote (a published report, or one whose workdir is
    gone), keyed as :func:`read_states` keys them. A gated run's gate comes back as the ``gate_pattern`` and
    ``gate_open_share`` the report keeps (its per-validation history is not in the table)."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = sorted(set(RUN_FIELDS) - set(rows[0] if rows else RUN_FIELDS))
    if not rows or missing:
        raise ValueError(f"{path} is not a task-families runs.csv (no rows, or no columns {missing}).")
    records = {}
    for row in rows:
        r = {name: cast(row[name]) for name, cast in RUN_FIELDS.items()}
        if row.get("gate_pattern"):
            if row["gate_pattern"] not in GATE_PATTERNS:
                raise ValueError(f"{path}: gate_pattern {row['gate_pattern']!r} is not one of {GATE_PATTERNS}.")
            r.update(gate_pattern=row["gate_pattern"], gate_open_share=float(row["gate_open_share"]))
        records[_key(task_by_name(r["task"]), r["setting"], r["seed"])] = r
    return records


def _read_states_file(path: str) -> dict:
    import json

    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _pairs(records: dict[str, dict], setting: str, baseline: str) -> tuple[list[str], np.ndarray]:
    """Paired differences ``setting - baseline`` in points, per (task, seed) where both ran."""
    acc = {(r["task"], r["seed"], r["setting"]): r["accuracy"] for r in records.values()}
    keys = sorted({(t, s) for t, s, m in acc if m == setting and (t, s, baseline) in acc})
    diffs = np.array([100.0 * (acc[(t, s, setting)] - acc[(t, s, baseline)]) for t, s in keys], dtype=np.float64)
    return [t for t, _ in keys], diffs


def _rd_settings(records: dict[str, dict]) -> list[str]:
    """The RD settings (method ``rd``) that have recorded runs, in :data:`SETTINGS` order."""
    ran = {r["setting"] for r in records.values()}
    return [s for s in SETTINGS if SETTINGS[s]["method"] == "rd" and s in ran]


def _task_gains(records: dict[str, dict], setting: str, baseline: str) -> dict[str, float]:
    """``{task: mean over seeds of setting - baseline}`` in points (paired runs only)."""
    names, d = _pairs(records, setting, baseline)
    per_task: dict[str, list[float]] = {}
    for name, v in zip(names, d):
        per_task.setdefault(name, []).append(float(v))
    return {t: float(np.mean(v)) for t, v in per_task.items()}


def summarise(records: dict[str, dict], seed: int = 0) -> list[dict]:
    """For each RD setting against the student alone and against KD: the paired differences in points over every
    (task, seed) where both ran: their ``n``, mean with a 95 % bootstrap interval, worst case, the share of runs RD
    loses by more than 2 points, and the counts of losses and wins by more than 5 points."""
    from monai_rd.metrics.bootstrap import bootstrap_ci

    rows = []
    ran = {r["setting"] for r in records.values()}
    for setting in _rd_settings(records):
        for baseline in ("student", "kd"):
            if baseline not in ran:
                continue
            _, d = _pairs(records, setting, baseline)
            if d.size == 0:
                continue
            ci = bootstrap_ci(np.mean, [d], seed=seed) if d.size > 1 else {"ci_low": np.nan, "ci_high": np.nan}
            rows.append({
                "setting": setting, "baseline": baseline, "n": int(d.size), "mean": float(d.mean()),
                "ci_low": float(ci["ci_low"]), "ci_high": float(ci["ci_high"]), "worst": float(d.min()),
                "share_losing_over_2": float((d < -2).mean()), "losses_over_5": int((d < -5).sum()),
                "wins_over_5": int((d > 5).sum()),
            })  # fmt: skip
    return rows


#: how a gated run's gate behaved over its validations (:func:`gate_summary`)
GATE_PATTERNS: tuple[str, ...] = ("always open", "open and closed", "never open")


def gate_pattern(history: Sequence[Sequence]) -> str:
    """``"always open"``, ``"never open"`` or ``"open and closed"``: the gate's decision after every validation of one
    run (``[epoch, teacher accuracy, student accuracy, open]`` each, as :func:`run_one` records them)."""
    opened = [bool(h[3]) for h in history]
    if not opened:
        raise ValueError("a gated run with no validation recorded has no gate pattern.")
    return "always open" if all(opened) else "never open" if not any(opened) else "open and closed"


def run_gate(record: dict) -> tuple[str, float] | None:
    """``(pattern, open share)`` of a gated run: from its per-validation history, or as a ``runs.csv`` read back by
    :func:`read_runs_csv` keeps it; ``None`` for a run without a gate."""
    if record.get("gate"):
        return gate_pattern(record["gate"]), float(np.mean([bool(h[3]) for h in record["gate"]]))
    if record.get("gate_pattern"):
        return record["gate_pattern"], float(record["gate_open_share"])
    return None


def gate_summary(records: dict[str, dict]) -> list[dict]:
    """For each setting whose runs recorded the distillation gate, and each :data:`GATE_PATTERNS`: the runs whose gate
    behaved so, with their paired differences against the student alone (points): ``n``, mean, losses and wins by
    more than 5 points, and the mean share of validations at which the gate was open."""
    student = {(r["task"], r["seed"]): r["accuracy"] for r in records.values() if r["setting"] == "student"}
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in records.values():
        gate = run_gate(r)
        if gate is None or (r["task"], r["seed"]) not in student:
            continue
        d = 100.0 * (r["accuracy"] - student[(r["task"], r["seed"])])
        groups.setdefault((r["setting"], gate[0]), []).append((d, gate[1]))
    rows = []
    for setting in [s for s in SETTINGS if any(k[0] == s for k in groups)]:
        for pattern in GATE_PATTERNS:
            if (setting, pattern) not in groups:
                continue
            d, share = (np.array(v, dtype=np.float64) for v in zip(*groups[(setting, pattern)]))
            rows.append({"setting": setting, "pattern": pattern, "n": int(d.size), "mean": float(d.mean()),
                         "losses_over_5": int((d < -5).sum()), "wins_over_5": int((d > 5).sum()),
                         "open_share": float(share.mean())})  # fmt: skip
    return rows


def task_by_name(name: str) -> Task:
    """The task called ``name`` (``<family>-t<index>``), as :attr:`Task.name` spells it."""
    family, sep, index = name.rpartition("-t")
    known = {f.name: f for f in families()}
    if not sep or family not in known or not index.isdigit():
        raise ValueError(f"{name!r} is not a task name (<family>-t<index>, family one of {sorted(known)}).")
    return Task(known[family], int(index))


#: the transferability scores ``monai-rd rank-teachers`` writes (``rank_teachers.csv`` columns) that are correlated
#: with RD's gain
SCORES: tuple[str, ...] = ("logme", "probe_accuracy", "knn_accuracy")


def score_correlations(
    records: dict[str, dict], scores: dict[str, dict[str, float]], n_resamples: int = 1000, seed: int = 0
) -> list[dict]:
    """Spearman rank correlation, over tasks, between each teacher score and RD's gain.

    ``scores``: ``{task name: {score name: value}}`` (the task's teacher on its training split, from
    ``monai-rd rank-teachers``). A task's gain is the mean over seeds of its paired differences (points). Returns one
    row per (RD setting, baseline, score): ``n`` tasks, ``rho`` and its two-sided ``p`` (``scipy.stats.spearmanr``)
    and a 95 % percentile-bootstrap interval of ``rho`` over tasks.
    """
    from scipy.stats import spearmanr

    from monai_rd.metrics.bootstrap import bootstrap_ci

    def rho(a, b):
        return float(spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else np.nan

    rows = []
    for setting in _rd_settings(records):
        for baseline in ("student", "kd"):
            gains = _task_gains(records, setting, baseline)
            common = sorted(t for t in gains if t in scores)
            if len(common) < 3:
                continue
            gain = np.array([gains[t] for t in common], dtype=np.float64)
            for score in SCORES:
                x = np.array([scores[t][score] for t in common], dtype=np.float64)
                test = spearmanr(x, gain)
                ci = bootstrap_ci(rho, [x, gain], n_resamples=n_resamples, seed=seed)
                rows.append({"setting": setting, "baseline": baseline, "score": score, "n": len(common),
                             "rho": float(test.statistic), "p": float(test.pvalue),
                             "ci_low": float(ci["ci_low"]), "ci_high": float(ci["ci_high"])})  # fmt: skip
    return rows


def write_report(
    records: dict[str, dict], workdir: str, scores: dict[str, dict[str, float]] | None = None
) -> dict[str, str]:
    """``runs.csv`` (one row per run), ``summary.md`` (the :func:`summarise` table, the mean difference per family
    the :func:`gate_summary` table when gated runs recorded their gate, and, with ``scores``, the
    :func:`score_correlations` table) and ``families.png`` (RD minus the student alone per
    family, each setting); returns their paths."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monai_rd.utils import atomic_path, atomic_write_text

    paths = {
        k: os.path.join(workdir, v) for k, v in (("csv", "runs.csv"), ("md", "summary.md"), ("png", "families.png"))
    }
    fields = [*RUN_FIELDS, "gate_pattern", "gate_open_share"]
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in sorted(records.values(), key=lambda r: (r["task"], r["setting"], r["seed"])):
            gate = run_gate(r)  # a gated run that recorded its gate: what it did (empty otherwise)
            writer.writerow({**r, **({"gate_pattern": gate[0], "gate_open_share": gate[1]} if gate else {})})
    lines = ["# RD on task families", "", "Differences in accuracy points, paired per (task, seed).", "",
             "| setting | vs | n | mean [95 % CI] | worst | loses by > 2 | losses > 5 | wins > 5 |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in summarise(records):
        lines.append(
            f"| {r['setting']} | {r['baseline']} | {r['n']} | {r['mean']:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}] "
            f"| {r['worst']:+.1f} | {100 * r['share_losing_over_2']:.0f} % | {r['losses_over_5']} | {r['wins_over_5']} |"
        )
    seeds = sorted({r["seed"] for r in records.values()})
    if len(seeds) > 1:  # the pooled rows above, seed by seed: one seed's start is common to all its tasks
        lines += ["", "Per seed:", "", "| setting | vs | seed | n | mean [95 % CI] | losses > 5 | wins > 5 |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for seed in seeds:
            for r in summarise({k: v for k, v in records.items() if v["seed"] == seed}):
                lines.append(f"| {r['setting']} | {r['baseline']} | {seed} | {r['n']} | {r['mean']:+.1f} "
                             f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}] | {r['losses_over_5']} | {r['wins_over_5']} |")  # fmt: skip
    ran = {r["setting"] for r in records.values()}
    rd_settings = _rd_settings(records)
    per_family: dict[str, dict[str, float]] = {}
    for setting in rd_settings:  # the mean over a family's tasks of each task's gain (itself the mean over seeds)
        fam = {}
        for name, gain in _task_gains(records, setting, "student").items():
            fam.setdefault(name.rsplit("-t", 1)[0], []).append(gain)
        per_family[setting] = {k: float(np.mean(v)) for k, v in sorted(fam.items())}
    names = sorted(set().union(*per_family.values())) if per_family else []
    if names:
        lines += ["", "| family | " + " | ".join(f"{s} - student" for s in per_family) + " |",
                  "|---|" + "---|" * len(per_family)]  # fmt: skip
        for name in names:
            lines.append(
                f"| {name} | "
                + " | ".join(f"{per_family[s][name]:+.1f}" if name in per_family[s] else "not run" for s in per_family)
                + " |"
            )
    columns = [(st, b) for st in rd_settings for b in ("student", "kd") if b in ran]
    gains = {c: _task_gains(records, *c) for c in columns}
    if any(gains.values()):
        lines += ["", "Mean per-task gain (points) by the value of each axis:", "",
                  "| axis | value | " + " | ".join(f"{st} - {b}" for st, b in columns) + " |",
                  "|---|---|" + "---|" * len(columns)]  # fmt: skip
        family_of = {t: task_by_name(t).family for t in set().union(*gains.values())}
        for axis in ("separability", "images_per_class", "teacher", "epochs"):
            for value in dict.fromkeys(getattr(f, axis) for f in families()):
                cells = []
                for c in columns:
                    v = [g for t, g in gains[c].items() if getattr(family_of[t], axis) == value]
                    cells.append(f"{np.mean(v):+.1f} ({len(v)})" if v else "not run")
                lines.append(f"| {axis} | {value} | " + " | ".join(cells) + " |")
    gate_rows = gate_summary(records)
    if gate_rows:
        lines += ["", "The distillation gate over each gated run's validations, against the student alone (points):", "",
                  "| setting | gate | runs | mean | losses > 5 | wins > 5 | validations open |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in gate_rows:
            lines.append(f"| {r['setting']} | {r['pattern']} | {r['n']} | {r['mean']:+.1f} | {r['losses_over_5']} "
                         f"| {r['wins_over_5']} | {100 * r['open_share']:.0f} % |")  # fmt: skip
    if scores:
        lines += ["", "Spearman rank correlation over tasks between the task's teacher score (`monai-rd rank-teachers` "
                  "on its training split) and RD's gain (mean over seeds).", "",
                  "| setting | gain over | score | tasks | rho [95 % CI] | p |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in score_correlations(records, scores):
            lines.append(f"| {r['setting']} | {r['baseline']} | {r['score']} | {r['n']} | {r['rho']:+.2f} "
                         f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] | {r['p']:.3f} |")  # fmt: skip
    atomic_write_text(paths["md"], "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names) + 2), 4))
    width = 0.8 / max(1, len(per_family))
    for j, (setting, fam) in enumerate(per_family.items()):
        n_runs = _pairs(records, setting, "student")[1].size  # settings may differ in seeds: say how many runs each
        ax.bar(np.arange(len(names)) + j * width, [fam.get(n, np.nan) for n in names], width,
               label=f"{setting} ({n_runs} runs)")  # fmt: skip
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(names)) + width * (len(per_family) - 1) / 2, names, rotation=90, fontsize=7)
    ax.set_ylabel("RD - student alone (points)")
    ax.legend(ncol=max(1, len(per_family)), loc="lower left", bbox_to_anchor=(0, 1), fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_path(paths["png"], suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    if scores:
        paths["scores_png"] = _plot_scores(records, scores, os.path.join(workdir, "scores.png"))
    return paths


def _plot_scores(records: dict[str, dict], scores: dict[str, dict[str, float]], path: str) -> str:
    """Each teacher score against RD's gain over the student alone, one point per task, one panel per score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monai_rd.utils import atomic_path

    fig, axes = plt.subplots(1, len(SCORES), figsize=(4 * len(SCORES), 3.6), squeeze=False)
    for setting, marker in zip(_rd_settings(records), "o^sDv"):
        gains = _task_gains(records, setting, "student")
        common = sorted(t for t in gains if t in scores)
        for ax, score in zip(axes[0], SCORES):
            ax.scatter([scores[t][score] for t in common], [gains[t] for t in common], marker=marker,
                       s=18, alpha=0.75, label=setting)  # fmt: skip
    for ax, score in zip(axes[0], SCORES):
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel(f"teacher {score} on the task")
        ax.set_ylabel("RD minus student alone (points)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path

"""The paper's experiment protocol: a grid of bundle runs, resumable, logged to one MLflow experiment, tabulated.

A *grid* (YAML, see ``grids/``) names datasets (a bundle + its data), teachers, students, methods and seeds;
every combination is a *cell*, trained by ``python -m monai.bundle run`` of the dataset's bundle with the cell's
overrides written to ``<out>/cells/<cell_id>/overrides.json`` (passed as a second config file, so values keep
their JSON types and the exact command can be re-run by hand). ``<out>/state.json`` records, atomically after
every cell, each cell's status (``done`` with its metrics, or ``failed`` with its error); a later invocation
skips ``done`` cells and retries the others. Every cell logs to one MLflow experiment (run name = cell id);
metrics are read back from that run with :class:`mlflow.tracking.MlflowClient`.

Grid file keys (``*`` = required)::

    name*: experiment name (MLflow) and default output folder name
    seeds*: [0, 1, 2]
    metric: the validation metric that selects each run's checkpoint (default val_accuracy)
    report_metric: what the tables show x 100 (default the test-split twin of ``metric``: val_accuracy ->
               test_accuracy), as the bundles log it once per run for the selected checkpoint
    split_protocol: holdout (default: training / validation for selection / test for reporting) or paper_4to1
               (the paper's 4:1, selection on the reporting set); passed to every cell and named in every table
    folds: k (optional): k-fold cross-validation, a cell per fold (the test split stays fixed); per dataset too
    overrides: {key: value}           # bundle overrides for every cell (max_epochs, image_size, ...)
    datasets*: {key: {bundle*: rd_busi, dataset_dir: path, metric: ..., report_metric: ..., folds: k,
                      overrides: {...}, synthetic: {layout: busi|isic|covid|btc|chestxray, n: 12, size: 64}}}
    teachers*: {key: {name*: registry name, weights: file or null, overrides: {...}}}
    students*: {key: {name*: registry name, weights: file or null, overrides: {...}}}
    methods*:  {key: {method*: bundle method id, overrides: {...}, uses_teacher: true,
                      ablation: {di_reprog: bool, co_reprog: bool, kd: bool, cka: bool}}}
    tables: {file stem: {title: ..., methods: [method keys], layout: methods|ablation}}

Table entries are mean ± sample std over every finished seed x fold of a cell group, with ``(n=k)`` when fewer
runs than the grid asks for finished (a single run shows its value and ``n=1``, never ``± 0.00``).
``overrides`` are merged dataset < teacher < student < method (later wins); keys may use MONAI's ``#`` path
syntax (``loss_weights#cka: 0.0``). A method with ``uses_teacher: false`` (e.g. ``student``) runs once per
dataset/student/seed, with teacher ``-``. ``synthetic`` data is written under ``<out>/data/<dataset>`` and
used instead of ``dataset_dir`` only when :func:`run_grid` is called with ``fabricate=True``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monai_rd.bundle import bundle_args, bundle_command, bundle_root
from monai_rd.data.datalist import SPLIT_PROTOCOLS
from monai_rd.utils import atomic_write_json, atomic_write_text
from monai_rd.utils.mlflow_runs import read_run_metrics, retire_failed_runs, set_run_tags

__all__ = [
    "Cell",
    "Grid",
    "GridError",
    "load_grid",
    "expand_cells",
    "run_grid",
    "summarize",
    "methods_table",
    "ablation_table",
    "plot_methods",
    "write_reports",
    "read_run_metrics",
]

NO_TEACHER = "-"
ABLATION_COLUMNS = (("di_reprog", "Di. Reprog."), ("co_reprog", "Co. Reprog."), ("kd", "KD"), ("cka", "CKA"))
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class GridError(ValueError):
    """A grid file that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class Cell:
    """One bundle run: dataset x teacher x student x method x seed (x fold under cross-validation)."""

    dataset: str
    teacher: str
    student: str
    method: str
    seed: int
    fold: int | None = None

    @property
    def id(self) -> str:
        parts = (self.dataset, self.teacher if self.teacher != NO_TEACHER else "noteacher", self.student, self.method)
        fold = "" if self.fold is None else f"__f{self.fold}"
        return "__".join(_ID_SAFE.sub("-", p) for p in parts) + f"__s{self.seed}{fold}"


@dataclass
class Grid:
    """A parsed grid file (see the module docstring for the keys)."""

    name: str
    seeds: list[int]
    datasets: dict[str, dict]
    teachers: dict[str, dict]
    students: dict[str, dict]
    methods: dict[str, dict]
    metric: str = "val_accuracy"
    report_metric: str | None = None
    split_protocol: str = "holdout"
    folds: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict] = field(default_factory=dict)
    path: str = ""

    def metric_for(self, dataset: str) -> str:
        """The validation metric that selects the checkpoint of ``dataset``'s runs."""
        return self.datasets[dataset].get("metric", self.metric)

    def report_metric_for(self, dataset: str) -> str:
        """The metric the tables report for ``dataset``: given, or the ``test_`` twin of its selection metric."""
        given = self.datasets[dataset].get("report_metric", self.report_metric)
        if given:
            return given
        metric = self.metric_for(dataset)
        return "test_" + (metric[len("val_") :] if metric.startswith("val_") else metric)

    def folds_for(self, dataset: str) -> int | None:
        return self.datasets[dataset].get("folds", self.folds)

    def runs_per_cell(self, dataset: str) -> int:
        """How many runs (seeds x folds) one table entry of ``dataset`` averages when all have finished."""
        return len(self.seeds) * (self.folds_for(dataset) or 1)

    @property
    def protocol_label(self) -> str:
        return f"{self.split_protocol} ({SPLIT_PROTOCOLS[self.split_protocol]})"


def _require_mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict) or not value:
        raise GridError(f"{where} must be a non-empty mapping, got {value!r}.")
    return value


def load_grid(path: str | os.PathLike) -> Grid:
    """Read and check a grid YAML file; errors name the file and the offending key."""
    import yaml

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise GridError(f"Grid file {path!r} does not exist.")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise GridError(f"Grid file {path!r} is not valid YAML: {e}") from e
    raw = _require_mapping(raw, f"{path}: the grid")
    known = {
        "name",
        "seeds",
        "metric",
        "report_metric",
        "split_protocol",
        "folds",
        "overrides",
        "datasets",
        "teachers",
        "students",
        "methods",
        "tables",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise GridError(f"{path}: unknown top-level key(s) {unknown}; known keys are {sorted(known)}.")
    for key in ("name", "seeds", "datasets", "teachers", "students", "methods"):
        if key not in raw:
            raise GridError(f"{path}: missing required key {key!r}.")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise GridError(f"{path}: 'seeds' must be a non-empty list of integers, got {seeds!r}.")
    sections = {}
    required_keys = (("datasets", "bundle"), ("teachers", "name"), ("students", "name"), ("methods", "method"))
    for section, required in required_keys:
        entries = _require_mapping(raw[section], f"{path}: {section!r}")
        for key, entry in entries.items():
            where = f"{path}: {section}.{key}"
            _require_mapping(entry, where)
            if required not in entry:
                raise GridError(f"{where}: missing required key {required!r}.")
            if not isinstance(entry.get("overrides", {}), dict):
                raise GridError(f"{where}.overrides must be a mapping of bundle keys to values.")
        sections[section] = {str(k): dict(v) for k, v in entries.items()}
    for key, entry in sections["datasets"].items():
        try:
            config = os.path.join(bundle_root(entry["bundle"]), "configs", "train.json")
        except FileNotFoundError as e:
            raise GridError(f"{path}: datasets.{key}.bundle {entry['bundle']!r}: {e}") from e
        if not os.path.isfile(config):
            raise GridError(f"{path}: datasets.{key}.bundle {entry['bundle']!r} has no {config}.")
        if "dataset_dir" not in entry and "synthetic" not in entry:
            raise GridError(f"{path}: datasets.{key} needs 'dataset_dir' (or 'synthetic' for --fabricate).")
    for key, entry in sections["methods"].items():
        bad = sorted(set(entry.get("ablation", {})) - {c for c, _ in ABLATION_COLUMNS})
        if bad:
            raise GridError(f"{path}: methods.{key}.ablation has unknown switch(es) {bad}.")
    tables = raw.get("tables") or {}
    for stem, spec in tables.items():
        where = f"{path}: tables.{stem}"
        _require_mapping(spec, where)
        missing = [m for m in spec.get("methods", []) if m not in sections["methods"]]
        if missing:
            raise GridError(f"{where}.methods names method(s) {missing} not defined under 'methods'.")
        if spec.get("layout", "methods") not in ("methods", "ablation"):
            raise GridError(f"{where}.layout must be 'methods' or 'ablation', got {spec.get('layout')!r}.")
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise GridError(f"{path}: 'overrides' must be a mapping.")
    protocol = raw.get("split_protocol", "holdout")
    if protocol not in SPLIT_PROTOCOLS:
        raise GridError(f"{path}: split_protocol must be one of {sorted(SPLIT_PROTOCOLS)}, got {protocol!r}.")
    reserved = sorted({"split_protocol", "folds", "fold"} & set(overrides))
    if reserved:
        raise GridError(f"{path}: overrides set {reserved}; use the grid's own 'split_protocol'/'folds' keys.")
    for where, value in [("folds", raw.get("folds"))] + [
        (f"datasets.{k}.folds", e.get("folds")) for k, e in sections["datasets"].items()
    ]:
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise GridError(f"{path}: {where} must be an integer >= 2 (k-fold cross-validation), got {value!r}.")
        if protocol != "holdout":
            raise GridError(
                f"{path}: {where} needs split_protocol: holdout (the paper's 4:1 has no validation split to rotate)."
            )
    return Grid(
        name=str(raw["name"]),
        seeds=seeds,
        metric=str(raw.get("metric", "val_accuracy")),
        report_metric=raw.get("report_metric"),
        split_protocol=protocol,
        folds=raw.get("folds"),
        overrides=overrides,
        tables=tables,
        path=path,
        **sections,
    )


#: what ``fast_run`` puts over every cell's overrides: one short epoch on small images with random teacher weights,
#: so every cell of a paper grid starts, builds its method and trains on fabricated data (nothing downloaded)
FAST_RUN_OVERRIDES: dict[str, Any] = {
    "max_epochs": 1,
    "stage1_epochs": 1,
    "image_size": 32,
    "batch_size": 4,
    "num_workers": 0,
    "teacher_weights": "random",
    "progress_bar": False,
}

#: the synthetic data ``fabricate`` writes for a dataset without a ``synthetic`` entry (the paper grids' datasets)
FAST_RUN_SYNTHETIC = {"n": 8, "size": 32, "seed": 0}


def expand_cells(grid: Grid) -> list[Cell]:
    """All cells, in grid order; teacher-independent methods (``uses_teacher: false``) once per teacher-less cell;
    one cell per fold of a cross-validated dataset."""
    cells: list[Cell] = []
    seen = set()
    for dataset, student, method, teacher, seed in itertools.product(
        grid.datasets, grid.students, grid.methods, grid.teachers, grid.seeds
    ):
        if not grid.methods[method].get("uses_teacher", True):
            teacher = NO_TEACHER
        folds = grid.folds_for(dataset)
        for fold in range(folds) if folds else [None]:
            cell = Cell(dataset, teacher, student, method, seed, fold)
            if cell not in seen:
                seen.add(cell)
                cells.append(cell)
    return cells


def cell_overrides(
    grid: Grid, cell: Cell, out_dir: str, dataset_dir: str, tracking_uri: str, fast_run: bool = False
) -> dict[str, Any]:
    """The bundle overrides of one cell (what goes into its ``overrides.json``); ``fast_run``: with
    :data:`FAST_RUN_OVERRIDES` over them (a teacher-less cell keeps no teacher weights)."""
    ds, st, me = grid.datasets[cell.dataset], grid.students[cell.student], grid.methods[cell.method]
    te = grid.teachers[cell.teacher] if cell.teacher != NO_TEACHER else None
    values: dict[str, Any] = dict(grid.overrides)
    values.update(ds.get("overrides", {}))
    if te is not None:
        values.update({"teacher": te["name"], "teacher_weights": te.get("weights")})
        values.update(te.get("overrides", {}))
    values.update({"student": st["name"], "student_weights": st.get("weights")})
    values.update(st.get("overrides", {}))
    values.update(me.get("overrides", {}))
    values.update(
        {
            "method": me["method"],
            "dataset_dir": dataset_dir,
            "output_dir": os.path.join(out_dir, "cells", cell.id),
            "seed": cell.seed,
            "split_protocol": grid.split_protocol,
            "folds": grid.folds_for(cell.dataset) if cell.fold is not None else None,
            "fold": cell.fold,
            "tracking_uri": tracking_uri,
            "experiment_name": grid.name,
            "run_name": cell.id,
        }
    )
    if fast_run:
        values.update(FAST_RUN_OVERRIDES)
        if te is None:
            values.pop("teacher_weights")
    return values


def _fabricate(grid: Grid, dataset: str, out_dir: str, fast_run: bool = False) -> str:
    """Write (once) the synthetic data of ``datasets.<dataset>.synthetic`` under ``<out>/data/<dataset>``; with
    ``fast_run``, a dataset without that entry gets its bundle's layout at :data:`FAST_RUN_SYNTHETIC`."""
    from monai_rd.experiments.demo import DEMO_DATASETS

    spec = grid.datasets[dataset].get("synthetic")
    if not spec:
        layout = grid.datasets[dataset]["bundle"].removeprefix("rd_")
        if not (fast_run and layout in DEMO_DATASETS):
            raise GridError(
                f"{grid.path}: datasets.{dataset} has no 'synthetic' entry, so --fabricate cannot make it"
                + (" (--fast_run fabricates the paper datasets' layouts)." if layout in DEMO_DATASETS else ".")
            )
        spec = {"layout": layout, **FAST_RUN_SYNTHETIC}
    layout = spec.get("layout")
    if layout not in DEMO_DATASETS:
        raise GridError(f"{grid.path}: datasets.{dataset}.synthetic.layout must be one of {sorted(DEMO_DATASETS)}.")
    folder = os.path.join(out_dir, "data", dataset)
    marker = os.path.join(folder, ".dataset_dir")
    if os.path.isfile(marker):
        with open(marker) as f:
            return f.read().strip()
    n, size, seed = int(spec.get("n", 12)), int(spec.get("size", 64)), int(spec.get("seed", 0))
    root = DEMO_DATASETS[layout].writer(folder, n, size, seed)
    atomic_write_text(marker, root)
    return root


def _bundle_has_method(config: str) -> bool:
    with open(config) as f:
        return "method" in json.load(f)


_ERROR_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception)\b.*:")


def _root_error(path: str) -> str:
    """The first exception line of a log (the root cause of a chained traceback), or ''."""
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if _ERROR_LINE.match(line):
                    return line.strip()
    except OSError:
        pass
    return ""


def _tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def run_cell(
    grid: Grid,
    cell: Cell,
    out_dir: str,
    dataset_dir: str,
    tracking_uri: str,
    timeout: float | None,
    fast_run: bool = False,
) -> dict:
    """Train one cell through its bundle; returns its state record (``status`` done/failed)."""
    config = os.path.join(bundle_root(grid.datasets[cell.dataset]["bundle"]), "configs", "train.json")
    cell_dir = os.path.join(out_dir, "cells", cell.id)
    os.makedirs(cell_dir, exist_ok=True)
    overrides = cell_overrides(grid, cell, out_dir, dataset_dir, tracking_uri, fast_run)
    method_id = overrides["method"]
    if not _bundle_has_method(config):
        if method_id != "rd":
            raise RuntimeError(
                f"bundle {config} has no 'method' id, so it only trains RD; method {method_id!r} "
                f"(grid methods.{cell.method}) needs a bundle with method support."
            )
        overrides.pop("method")  # nothing to select in a bundle that only does RD
    overrides_file = atomic_write_json(os.path.join(cell_dir, "overrides.json"), overrides)
    bundle, configs = grid.datasets[cell.dataset]["bundle"], ["train.json", os.path.abspath(overrides_file)]
    cmd = bundle_args(bundle, configs)
    log_file = os.path.join(cell_dir, "train.log")
    started_ms = int(time.time() * 1000)
    with open(log_file, "w") as log:
        log.write("$ " + bundle_command(bundle, configs) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=_child_env())
    if proc.returncode != 0:
        raise RuntimeError(
            f"bundle exited with code {proc.returncode}: {_root_error(log_file)}\n"
            f"last lines of {log_file}:\n{_tail(log_file)}"
        )
    metrics = read_run_metrics(tracking_uri, grid.name, cell.id, grid.metric_for(cell.dataset), since_ms=started_ms)
    set_run_tags(
        tracking_uri,
        metrics["run_id"],
        {
            f"monai_rd.{key}": value
            for key, value in {
                "dataset": cell.dataset,
                "teacher": cell.teacher,
                "student": cell.student,
                "method": cell.method,
                "method_id": method_id,
                "seed": cell.seed,
                "fold": cell.fold,
                "split_protocol": grid.split_protocol,
                "grid": grid.name,
            }.items()
        },
    )
    return {"status": "done", "metrics": metrics, "command": cmd}


def _child_env() -> dict:
    env = dict(os.environ)
    # make the bundle import this very monai_rd (a source checkout run with PYTHONPATH, or the installed one)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return env


def _load_state(path: str) -> dict:
    if not os.path.isfile(path):
        return {"cells": {}}
    with open(path) as f:
        try:
            state = json.load(f)
        except json.JSONDecodeError as e:
            raise RuntimeError(
                f"State file {path} is not valid JSON ({e}); move it away to start the grid afresh."
            ) from e
    state.setdefault("cells", {})
    return state


def run_grid(
    grid: Grid | str,
    out_dir: str,
    *,
    fabricate: bool = False,
    fast_run: bool = False,
    tracking_uri: str | None = None,
    only: Sequence[str] | None = None,
    timeout: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run every cell not yet ``done`` in ``<out_dir>/state.json``, then write the reports.

    Args:
        grid: a :class:`Grid` or the path of a grid file.
        out_dir: grid output folder (state.json, cells/, results.csv, tables, plot, mlruns.db).
        fabricate: write each dataset's ``synthetic`` data and use it instead of ``dataset_dir``.
        fast_run: every cell with :data:`FAST_RUN_OVERRIDES` over its overrides (it checks that each cell starts and
            trains; its numbers mean nothing). Keep its ``out_dir`` apart from real runs'.
        tracking_uri: MLflow store (default ``sqlite:///<out_dir>/mlruns.db``).
        only: run only cells whose id contains one of these substrings (reports still cover all done cells).
        timeout: seconds per cell (``None``: no limit).

    Returns:
        the state dict (``{"cells": {cell_id: record}}``).
    """
    grid = load_grid(grid) if isinstance(grid, (str, os.PathLike)) else grid
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    tracking_uri = tracking_uri or "sqlite:///" + os.path.join(out_dir, "mlruns.db")
    state_file = os.path.join(out_dir, "state.json")
    state = _load_state(state_file)
    grid_file = os.path.abspath(grid.path) if grid.path else ""
    state.update({"grid": grid.name, "grid_file": grid_file, "tracking_uri": tracking_uri})
    cells = expand_cells(grid)
    todo = [c for c in cells if state["cells"].get(c.id, {}).get("status") != "done"]
    if only:
        todo = [c for c in todo if any(s in c.id for s in only)]
    skipped = len(cells) - len(todo)
    log(f"grid {grid.name!r}: {len(cells)} cells, {skipped} skipped (done or filtered), {len(todo)} to run")
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="cells", unit="cell")
    dataset_dirs: dict[str, str] = {}
    for cell in todo:
        record = state["cells"].get(cell.id, {})
        attempt = int(record.get("attempts", 0)) + 1
        if bar is not None:
            bar.set_postfix_str(cell.id)
        t0 = time.time()
        try:
            if cell.dataset not in dataset_dirs:
                ds = grid.datasets[cell.dataset]
                dataset_dirs[cell.dataset] = (
                    _fabricate(grid, cell.dataset, out_dir, fast_run) if fabricate else ds.get("dataset_dir")
                )
                if not dataset_dirs[cell.dataset]:
                    raise GridError(f"{grid.path}: datasets.{cell.dataset} has no 'dataset_dir' (use --fabricate?).")
            new = run_cell(grid, cell, out_dir, dataset_dirs[cell.dataset], tracking_uri, timeout, fast_run)
            new.pop("command", None)
        except Exception as e:  # recorded and retried on the next invocation; the other cells go on
            new = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
            if not isinstance(e, (RuntimeError, GridError, subprocess.TimeoutExpired)):
                new["traceback"] = traceback.format_exc()
            retire_failed_runs(tracking_uri, grid.name, cell.id, attempt)
            log(f"cell {cell.id} FAILED: {new['error'].splitlines()[0]}")
        new.update(
            {
                **cell.__dict__,
                "attempts": attempt,
                "seconds": round(time.time() - t0, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        state["cells"][cell.id] = new
        atomic_write_json(state_file, state)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    write_reports(grid, state, out_dir)
    return state


# ------------------------------------------------------------------------------------------------ reports
def _rows(grid: Grid, state: dict) -> list[dict]:
    """One flat row per ``done`` cell of this grid, in grid order."""
    rows = []
    for cell in expand_cells(grid):
        record = state["cells"].get(cell.id)
        if not record or record.get("status") != "done":
            continue
        metric = grid.report_metric_for(cell.dataset)
        if metric not in record.get("metrics", {}):
            raise RuntimeError(
                f"Cell {cell.id} is done but has no {metric!r} in its recorded metrics "
                f"({sorted(record.get('metrics', {}))}); was the grid's 'metric'/'report_metric' changed, or was "
                "the cell run by a bundle that does not score the test split? Restore the grid or delete the cell "
                "from state.json to re-run it."
            )
        row = {
            "cell_id": cell.id,
            **cell.__dict__,
            "method_id": grid.methods[cell.method]["method"],
            "split_protocol": grid.split_protocol,
            "metric": metric,
            "value": record["metrics"][metric],
        }
        row.update({k: v for k, v in record["metrics"].items()})
        rows.append(row)
    return rows


def summarize(rows: Sequence[dict]) -> dict[tuple[str, str, str, str], dict]:
    """``(dataset, teacher, student, method) -> {"mean", "std", "n", "metric"}`` over seeds (and folds).

    ``std`` is the sample standard deviation (ddof=1); NaN for a single run, which has none.
    """
    groups: dict[tuple, list[float]] = {}
    metrics: dict[tuple, str] = {}
    for r in rows:
        key = (r["dataset"], r["teacher"], r["student"], r["method"])
        groups.setdefault(key, []).append(float(r["value"]))
        metrics[key] = r["metric"]
    out = {}
    for key, values in groups.items():
        a = np.asarray(values, dtype=np.float64)
        out[key] = {
            "mean": a.mean(),
            "std": a.std(ddof=1) if len(a) > 1 else float("nan"),
            "n": len(a),
            "metric": metrics[key],
        }
    return out


def _fmt(stats: dict | None, expected: int | None = None) -> str:
    """``mean ± std`` (x 100); ``(n=k)`` when fewer than ``expected`` runs finished; one run: ``value (n=1)``."""
    if stats is None:
        return "—"
    if stats["n"] == 1:
        return f"{100 * stats['mean']:.2f} (n=1)"
    text = f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"
    return text + (f" (n={stats['n']})" if expected is not None and stats["n"] < expected else "")


def _protocol_line(grid: Grid) -> str:
    folds = {grid.folds_for(d) for d in grid.datasets} - {None}
    cv = f"; {'/'.join(map(str, sorted(folds)))}-fold cross-validation, test split fixed" if folds else ""
    return f"Split protocol: {grid.protocol_label}{cv}."


def _lookup(summary: dict, dataset: str, teacher: str, student: str, method: str) -> dict | None:
    return summary.get((dataset, teacher, student, method)) or summary.get((dataset, NO_TEACHER, student, method))


def methods_table(grid: Grid, summary: dict, methods: Sequence[str], title: str = "") -> str:
    """Markdown, the layout of the paper's Tables 3 and 4: rows dataset x student x teacher, a column per method.

    Entries are ``100 x metric`` as ``mean ± std`` over seeds (``—``: not run or not finished); teacher-independent
    methods (``student``) repeat their value on every teacher row.
    """
    teachers = [t for t in grid.teachers] or [NO_TEACHER]
    lines = [f"### {title}", ""] if title else []
    lines += [_protocol_line(grid), ""]
    lines.append("| Dataset | Student | Teacher | " + " | ".join(methods) + " |")
    lines.append("|---|---|---|" + "---|" * len(methods))
    for dataset in grid.datasets:
        metric, expected = grid.report_metric_for(dataset), grid.runs_per_cell(dataset)
        for student in grid.students:
            for teacher in teachers:
                cells = [_fmt(_lookup(summary, dataset, teacher, student, m), expected) for m in methods]
                if all(c == "—" for c in cells):
                    continue
                lines.append(f"| {dataset} ({metric}) | {student} | {teacher} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ablation_table(grid: Grid, summary: dict, methods: Sequence[str], title: str = "") -> str:
    """Markdown, the layout of the paper's Table 2: a row per ablation variant (check marks), a column per setting."""
    settings = [(d, t, s) for d in grid.datasets for s in grid.students for t in grid.teachers]
    labels = [d if len(grid.teachers) * len(grid.students) == 1 else f"{d} {t}→{s}" for d, t, s in settings]
    lines = [f"### {title}", ""] if title else []
    metrics = ", ".join(sorted({grid.report_metric_for(d) for d in grid.datasets}))
    lines += [_protocol_line(grid) + f" Entries: 100 x {metrics}.", ""]
    lines.append("| " + " | ".join(name for _, name in ABLATION_COLUMNS) + " | method | " + " | ".join(labels) + " |")
    lines.append("|" + "---|" * (len(ABLATION_COLUMNS) + 1 + len(labels)))
    for m in methods:
        switches = grid.methods[m].get("ablation", {})
        marks = ["✓" if switches.get(key) else "" for key, _ in ABLATION_COLUMNS]
        values = [_fmt(_lookup(summary, d, t, s, m), grid.runs_per_cell(d)) for d, t, s in settings]
        lines.append("| " + " | ".join(marks) + f" | {m} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def plot_methods(grid: Grid, summary: dict, path: str) -> str:
    """PNG: one panel per dataset, bars = methods (grouped by teacher→student), error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(grid.datasets)
    methods = list(grid.methods)
    combos = [(t, s) for s in grid.students for t in grid.teachers]
    panel_width = max(4.0, 0.6 * len(methods) * len(combos))
    fig, axes = plt.subplots(1, len(datasets), figsize=(panel_width * len(datasets) ** 0.5 + 2, 4), squeeze=False)
    width = 0.8 / max(len(combos), 1)
    for ax, dataset in zip(axes[0], datasets):
        x = np.arange(len(methods))
        for i, (t, s) in enumerate(combos):
            stats = [_lookup(summary, dataset, t, s, m) for m in methods]
            means = [100 * st["mean"] if st else np.nan for st in stats]
            stds = [100 * st["std"] if st and st["n"] > 1 else 0.0 for st in stats]
            ax.bar(x + (i - (len(combos) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=f"{t}→{s}")
        ax.set_xticks(x, methods, rotation=45, ha="right")
        ax.set_title(dataset)
        ax.set_ylim(0, 100)
        ax.set_ylabel(f"{grid.report_metric_for(dataset)} (%)")
    axes[0][-1].legend(fontsize="small")
    fig.suptitle(f"{grid.name}: mean ± std over seeds/folds, split protocol {grid.split_protocol}")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_reports(grid: Grid, state: dict, out_dir: str) -> dict[str, str]:
    """Write ``results.csv``, ``summary.csv``, a markdown file per table, ``tables.md`` (all) and ``methods.png``."""
    rows = _rows(grid, state)
    base = [
        "cell_id",
        "dataset",
        "teacher",
        "student",
        "method",
        "method_id",
        "seed",
        "fold",
        "split_protocol",
        "metric",
        "value",
        "best_epoch",
        "epochs",
        "run_id",
    ]
    extra = sorted({k for r in rows for k in r} - set(base))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=base + extra)
    writer.writeheader()
    writer.writerows(rows)
    written = {"results": atomic_write_text(os.path.join(out_dir, "results.csv"), buf.getvalue())}
    summary = summarize(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "teacher", "student", "method", "split_protocol", "metric", "mean", "std", "n_runs"])
    for (d, t, s, m), st in summary.items():
        std = "" if st["n"] < 2 else f"{st['std']:.6f}"
        w.writerow([d, t, s, m, grid.split_protocol, st["metric"], f"{st['mean']:.6f}", std, st["n"]])
    written["summary"] = atomic_write_text(os.path.join(out_dir, "summary.csv"), buf.getvalue())
    tables = grid.tables or {"table_methods": {"title": "All methods", "methods": list(grid.methods)}}
    failed = sorted(k for k, v in state["cells"].items() if v.get("status") != "done")
    folds = {grid.folds_for(d) for d in grid.datasets} - {None}
    over = f"seeds {grid.seeds}" + (f" x folds ({'/'.join(map(str, sorted(folds)))})" if folds else "")
    split = (
        "the test split" if grid.split_protocol == "holdout" else "the paper's reporting set (also used for selection)"
    )
    parts = [
        f"# {grid.name}\n",
        _protocol_line(grid) + "\n",
        f"Entries: 100 x the report metric on {split}, mean ± std over {over} (std with ddof=1; (n=k): only k "
        "runs finished; n=1: one run, no std), of each run's checkpoint selected on validation "
        f"({', '.join(sorted({grid.metric_for(d) for d in grid.datasets}))}). "
        "95 % bootstrap intervals of each run are in its MLflow run and results.csv. "
        "— : not run or not finished.\n",
    ]
    if failed:
        parts.append(f"Unfinished cells ({len(failed)}): " + ", ".join(failed) + "\n")
    for stem, spec in tables.items():
        methods = spec.get("methods") or list(grid.methods)
        make = ablation_table if spec.get("layout", "methods") == "ablation" else methods_table
        text = make(grid, summary, methods, spec.get("title", stem))
        written[stem] = atomic_write_text(os.path.join(out_dir, f"{stem}.md"), text)
        parts.append(text)
    written["tables"] = atomic_write_text(os.path.join(out_dir, "tables.md"), "\n".join(parts))
    if summary:
        written["plot"] = plot_methods(grid, summary, os.path.join(out_dir, "methods.png"))
    return written

"""Running a grid: each cell trained by its bundle in a subprocess, its metrics read back from its MLflow run,
its record kept in ``<out>/state.json`` (atomically, after every cell) so that a later run resumes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from monai_rd.bundle import bundle_args, bundle_command, bundle_root
from monai_rd.experiments.protocol.grid import NO_TEACHER, Cell, Grid, GridError, expand_cells, load_grid
from monai_rd.experiments.protocol.report import write_reports
from monai_rd.utils import atomic_write_json, atomic_write_text
from monai_rd.utils.mlflow_runs import read_run_metrics, retire_failed_runs, set_run_tags

__all__ = ["FAST_RUN_OVERRIDES", "FAST_RUN_SYNTHETIC", "cell_overrides", "run_cell", "run_grid"]

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
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
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

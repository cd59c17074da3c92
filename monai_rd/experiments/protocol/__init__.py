"""The paper's experiment protocol: a grid of bundle runs, resumable, logged to one MLflow experiment, tabulated.

A *grid* (YAML, see ``grids/``) names datasets (a bundle + its data), teachers, students, methods and seeds;
every combination is a *cell*, trained by ``python -m monai.bundle run`` of the dataset's bundle with the cell's
overrides written to ``<out>/cells/<cell_id>/overrides.json`` (passed as a second config file, so values keep
their JSON types and the exact command can be re-run by hand). ``<out>/state.json`` records, atomically after
every cell, each cell's status (``done`` with its metrics, or ``failed`` with its error); a later invocation
skips ``done`` cells and retries the others. Every cell logs to one MLflow experiment (run name = cell id);
metrics are read back from that run with :class:`mlflow.tracking.MlflowClient`.

The package, by job: :mod:`~monai_rd.experiments.protocol.grid` (the grid file format, :func:`load_grid`,
:func:`expand_cells`), :mod:`~monai_rd.experiments.protocol.runner` (:func:`run_grid`, one bundle run per cell,
resumable) and :mod:`~monai_rd.experiments.protocol.report` (results, tables, plot). Every name is importable
from ``monai_rd.experiments.protocol`` as before the split.
"""

from monai_rd.experiments.protocol.grid import (
    ABLATION_COLUMNS,
    NO_TEACHER,
    Cell,
    Grid,
    GridError,
    expand_cells,
    load_grid,
)
from monai_rd.experiments.protocol.report import ablation_table, methods_table, plot_methods, summarize, write_reports
from monai_rd.experiments.protocol.runner import (
    FAST_RUN_OVERRIDES,
    FAST_RUN_SYNTHETIC,
    _bundle_has_method,
    _load_state,
    cell_overrides,
    run_cell,
    run_grid,
)
from monai_rd.utils.mlflow_runs import read_run_metrics

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
    "cell_overrides",
    "run_cell",
    "FAST_RUN_OVERRIDES",
    "FAST_RUN_SYNTHETIC",
    "NO_TEACHER",
    "ABLATION_COLUMNS",
    "_bundle_has_method",
    "_load_state",
]

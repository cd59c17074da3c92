"""Grid files of the experiment protocol: parsing and checking one (:func:`load_grid`), and its cells
(:func:`expand_cells`).

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

``overrides`` are merged dataset < teacher < student < method (later wins); keys may use MONAI's ``#`` path
syntax (``loss_weights#cka: 0.0``). A method with ``uses_teacher: false`` (e.g. ``student``) runs once per
dataset/student/seed, with teacher ``-``. ``synthetic`` data is written under ``<out>/data/<dataset>`` and
used instead of ``dataset_dir`` only when :func:`~monai_rd.experiments.protocol.run_grid` is called with ``fabricate=True``.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Any

from monai_rd.bundle import bundle_root
from monai_rd.data.datalist import SPLIT_PROTOCOLS

__all__ = ["NO_TEACHER", "ABLATION_COLUMNS", "Cell", "Grid", "GridError", "load_grid", "expand_cells"]

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

"""Reports of a grid: ``results.csv`` (a row per finished cell), ``summary.csv``, the markdown tables in the
layouts of the paper's Tables 2-4 and a bar plot.

Table entries are mean ± sample std over every finished seed x fold of a cell group, with ``(n=k)`` when fewer
runs than the grid asks for finished (a single run shows its value and ``n=1``, never ``± 0.00``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np

from monai_rd.experiments.protocol.grid import ABLATION_COLUMNS, NO_TEACHER, Grid, expand_cells
from monai_rd.utils import atomic_write_text

__all__ = ["summarize", "methods_table", "ablation_table", "plot_methods", "write_reports"]


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

"""Run the paper's experiment protocol: a grid of datasets x teachers x students x methods x seeds through the bundles.

Resumable: finished cells (recorded in ``<out>/state.json``) are skipped, failed ones retried. Every cell logs to
one MLflow experiment (the grid's name; run name = cell id). Writes ``results.csv``, ``summary.csv``, markdown
tables in the layout of the paper's Tables 2-4 and ``methods.png``. Grid files: ``grids/*.yaml``; format in
:mod:`monai_rd.experiments.protocol`.
"""

from __future__ import annotations

import argparse
import os

HELP = "run a grid of bundle trainings (datasets x teachers x students x methods x seeds), resumable; tables + plot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", required=True, help="grid YAML file (see grids/)")
    parser.add_argument("--output_dir", default=None, help="grid output folder (default: grid_runs/<grid name>)")
    parser.add_argument(
        "--fabricate",
        action="store_true",
        help="write each dataset's 'synthetic' data under <output_dir>/data and train on it",
    )
    parser.add_argument(
        "--fast_run",
        action="store_true",
        help="every cell for 1 epoch at 32 px with random teacher weights, to check that each starts "
        "(with --fabricate: the paper datasets' layouts); default output grid_runs/<name>_fast_run",
    )
    parser.add_argument("--tracking_uri", default=None, help="MLflow store (default sqlite:///<output_dir>/mlruns.db)")
    parser.add_argument("--only", nargs="+", default=None, help="run only cells whose id contains one of these")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per cell (default: no limit)")
    parser.add_argument(
        "--report_only", action="store_true", help="rewrite the tables/plot from state.json, run nothing"
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from monai_rd.experiments.protocol import GridError, _load_state, load_grid, run_grid, write_reports

    try:
        grid = load_grid(args.grid)
    except GridError as e:
        print(f"error: {e}")
        return 2
    default_dir = os.path.join("grid_runs", grid.name + ("_fast_run" if args.fast_run else ""))
    out_dir = os.path.abspath(args.output_dir or default_dir)
    if args.report_only:
        written = write_reports(grid, _load_state(os.path.join(out_dir, "state.json")), out_dir)
        print("\n".join(f"{k}: {v}" for k, v in written.items()))
        return 0
    state = run_grid(
        grid,
        out_dir,
        fabricate=args.fabricate,
        fast_run=args.fast_run,
        tracking_uri=args.tracking_uri,
        only=args.only,
        timeout=args.timeout,
        progress=not args.no_progress,
    )
    failed = {k: v for k, v in state["cells"].items() if v.get("status") != "done"}
    print(f"\nresults: {os.path.join(out_dir, 'results.csv')}\ntables:  {os.path.join(out_dir, 'tables.md')}")
    if failed:
        print(f"{len(failed)} cell(s) failed (see {os.path.join(out_dir, 'state.json')}; re-run to retry):")
        for k, v in failed.items():
            print(f"  {k}: {v.get('error', '').splitlines()[0] if v.get('error') else v.get('status')}")
        return 1
    return 0

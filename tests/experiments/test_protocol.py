"""The protocol runner: grid parsing, tables against hand-computed values, a real grid run that resumes."""

from __future__ import annotations

import csv
import json
import os
import subprocess

import pytest

from monai_rd.experiments.protocol import GridError, expand_cells, load_grid, run_grid, summarize, write_reports
from tests.helpers import REPO


def _write(path, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return str(path)


TABLE_GRID = """
name: hand
seeds: [0, 1, 2]
datasets:
  busi: {bundle: rd_busi, dataset_dir: /nowhere}
teachers:
  t1: {name: resnet50}
students:
  s1: {name: resnet18}
methods:
  student: {method: student, uses_teacher: false, ablation: {}}
  co_kd: {method: rd, overrides: {"loss_weights#cka": 0.0}, ablation: {co_reprog: true, kd: true}}
  rd: {method: rd, ablation: {co_reprog: true, kd: true, cka: true}}
tables:
  t2: {title: Ablation, layout: ablation, methods: [student, co_kd, rd]}
  t3: {title: Methods, methods: [student, rd]}
"""


def test_grid_expansion_and_errors(tmp_path):
    grid = load_grid(_write(tmp_path / "g.yaml", TABLE_GRID))
    cells = expand_cells(grid)
    # student is teacher-independent: 3 seeds once; co_kd and rd: 1 teacher x 3 seeds each
    assert len(cells) == 9
    assert [c.id for c in cells[:3]] == [f"busi__noteacher__s1__student__s{s}" for s in range(3)]
    assert len({c.id for c in cells}) == 9

    bad = TABLE_GRID.replace("methods: [student, rd]", "methods: [student, nope]")
    with pytest.raises(GridError, match=r"g2\.yaml.*tables\.t3.*nope"):
        load_grid(_write(tmp_path / "g2.yaml", bad))
    with pytest.raises(GridError, match=r"g3\.yaml.*missing required key 'seeds'"):
        load_grid(_write(tmp_path / "g3.yaml", TABLE_GRID.replace("seeds: [0, 1, 2]", "")))
    with pytest.raises(GridError, match=r"datasets\.busi\.bundle 'rd_nope'"):
        load_grid(_write(tmp_path / "g4.yaml", TABLE_GRID.replace("bundle: rd_busi", "bundle: rd_nope")))
    with pytest.raises(GridError, match=r"methods\.rd: missing required key 'method'"):
        load_grid(_write(tmp_path / "g5.yaml", TABLE_GRID.replace("rd: {method: rd, ", "rd: {")))
    with pytest.raises(GridError, match="split_protocol must be one of"):
        load_grid(_write(tmp_path / "g6.yaml", "split_protocol: 4to1\n" + TABLE_GRID))
    with pytest.raises(GridError, match="needs split_protocol: holdout"):
        load_grid(_write(tmp_path / "g7.yaml", "split_protocol: paper_4to1\nfolds: 5\n" + TABLE_GRID))
    with pytest.raises(GridError, match=r"datasets\.busi\.folds must be an integer >= 2"):
        load_grid(
            _write(tmp_path / "g8.yaml", TABLE_GRID.replace("dataset_dir: /nowhere", "dataset_dir: /x, folds: 1"))
        )
    # k-fold: a cell per fold, fold in the id; the protocol and fold reach the bundle overrides
    two_folds = TABLE_GRID.replace("dataset_dir: /nowhere", "dataset_dir: /x, folds: 2")
    folded = load_grid(_write(tmp_path / "g9.yaml", two_folds))
    cells = expand_cells(folded)
    assert len(cells) == 18 and cells[0].id == "busi__noteacher__s1__student__s0__f0" and cells[1].fold == 1
    from monai_rd.experiments.protocol import cell_overrides

    ov = cell_overrides(folded, cells[1], "/out", "/data", "sqlite:///x.db")
    assert (ov["split_protocol"], ov["folds"], ov["fold"]) == ("holdout", 2, 1)
    assert folded.report_metric_for("busi") == "test_accuracy" and folded.runs_per_cell("busi") == 6


def test_tables_match_hand_computed_values(tmp_path):
    grid = load_grid(_write(tmp_path / "g.yaml", TABLE_GRID))
    values = {"student": [0.70, 0.74, 0.72], "co_kd": [0.80, 0.80, 0.80], "rd": [0.80, 0.82, 0.84]}
    state = {"cells": {}}
    for cell in expand_cells(grid):
        state["cells"][cell.id] = {
            "status": "done",
            "metrics": {
                "val_accuracy": 0.5,
                "test_accuracy": values[cell.method][cell.seed],
                "best_epoch": 3,
                "epochs": 5,
                "run_id": "x",
            },
        }
    # one failed cell is reported as unfinished and kept out of the means
    failed_id = expand_cells(grid)[-1].id
    state["cells"][failed_id] = {"status": "failed", "error": "RuntimeError: boom"}
    written = write_reports(grid, state, str(tmp_path))

    # by hand: student mean 72, sample std 2; co_kd 80 +/- 0; rd over seeds 0, 1 only: mean 81, std sqrt(2)=1.41
    # (two of three runs: n=2); the tables report the test split, named with the protocol
    t3 = open(written["t3"]).read()
    assert "| busi (test_accuracy) | s1 | t1 | 72.00 ± 2.00 | 81.00 ± 1.41 (n=2) |" in t3
    assert "Split protocol: holdout (training / validation (model selection) / test (reported)" in t3
    t2 = open(written["t2"]).read()
    assert "|  |  |  |  | student | 72.00 ± 2.00 |" in t2
    assert "|  | ✓ | ✓ |  | co_kd | 80.00 ± 0.00 |" in t2
    assert "|  | ✓ | ✓ | ✓ | rd | 81.00 ± 1.41 (n=2) |" in t2
    assert "Split protocol: holdout" in t2 and "100 x test_accuracy" in t2
    # a single finished run shows n=1, never a made-up "± 0.00"
    for cell in expand_cells(grid):
        if cell.method == "rd" and cell.seed > 0:
            state["cells"][cell.id] = {"status": "failed", "error": "RuntimeError: boom"}
    written = write_reports(grid, state, str(tmp_path))
    assert "| busi (test_accuracy) | s1 | t1 | 72.00 ± 2.00 | 80.00 (n=1) |" in open(written["t3"]).read()
    # the paper's protocol is named as such in every table
    paper = load_grid(_write(tmp_path / "p.yaml", "split_protocol: paper_4to1\n" + TABLE_GRID))
    written = write_reports(paper, state, str(tmp_path / "paper"))
    for stem in ("t2", "t3", "tables"):
        assert (
            "Split protocol: paper_4to1 (the paper's protocol: 4:1 train/test, no separate validation "
            "(selection = reporting set))" in open(written[stem]).read()
        ), stem
    assert failed_id in open(written["tables"]).read()
    written = write_reports(
        grid,
        {
            "cells": {
                **state["cells"],
                **{
                    c.id: {"status": "done", "metrics": {"test_accuracy": values[c.method][c.seed]}}
                    for c in expand_cells(grid)
                    if c.method == "rd" and c.seed == 1
                },
            }
        },
        str(tmp_path),
    )
    with open(written["results"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["method"] for r in rows} == {"student", "co_kd", "rd"}
    assert all(r["teacher"] == "-" for r in rows if r["method"] == "student")
    with open(written["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    summary = summarize(rows=[{**r, "value": float(r["value"])} for r in rows])
    assert summary[("busi", "-", "s1", "student")]["n"] == 3
    del state["cells"][[c.id for c in expand_cells(grid) if c.method == "student" and c.seed == 0][0]]
    del state["cells"][[c.id for c in expand_cells(grid) if c.method == "student" and c.seed == 1][0]]
    written = write_reports(grid, state, str(tmp_path / "one_seed"))
    assert "|  |  |  |  | student | 72.00 (n=1) |" in open(written["t2"]).read()


RUN_GRID = """
name: test_grid
seeds: [0]
overrides: {max_epochs: 1, image_size: 32, batch_size: 4, num_workers: 0, progress_bar: false}
datasets:
  busi: {bundle: rd_busi, synthetic: {layout: busi, n: 6, size: 32}}
teachers:
  r18: {name: "torchvision:resnet18", weights: random}
students:
  resnet18: {name: resnet18}
methods:
  rd_detach: {method: rd, overrides: {detach_teacher: true}}
  broken: {method: rd, overrides: {teacher: no_such_teacher}}
"""


@pytest.fixture
def bundle_launches(monkeypatch):
    """Record every ``python -m monai.bundle`` subprocess the runner starts (the real subprocess still runs)."""
    launched = []
    real_run = subprocess.run

    def recording_run(cmd, *args, **kwargs):
        if isinstance(cmd, (list, tuple)) and "monai.bundle" in cmd:
            launched.append(list(cmd))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    return launched


@pytest.mark.slow
def test_grid_runs_records_failure_and_resumes(tmp_path, bundle_launches):
    from mlflow.tracking import MlflowClient

    from monai_rd.cli import main

    grid_file = _write(tmp_path / "grid.yaml", RUN_GRID)
    out = tmp_path / "out"
    state = run_grid(grid_file, str(out), fabricate=True, progress=False)
    assert len(bundle_launches) == 2
    cells = state["cells"]
    done = {k for k, v in cells.items() if v["status"] == "done"}
    assert done == {"busi__r18__resnet18__rd_detach__s0"}
    failed = cells["busi__r18__resnet18__broken__s0"]
    assert failed["status"] == "failed" and "no_such_teacher" in failed["error"] and failed["attempts"] == 1
    assert "KeyError: \"Unknown teacher 'no_such_teacher'" in failed["error"].splitlines()[0]
    # the state on disk is what was returned
    with open(out / "state.json") as f:
        assert json.load(f)["cells"] == json.loads(json.dumps(cells))
    # each cell's overrides file carries the cell's values, and its train.log the exact command
    ov = json.load(open(out / "cells" / "busi__r18__resnet18__rd_detach__s0" / "overrides.json"))
    assert ov["detach_teacher"] is True and ov["seed"] == 0 and ov["run_name"] == "busi__r18__resnet18__rd_detach__s0"
    assert ov["experiment_name"] == "test_grid" and ov["teacher"] == "torchvision:resnet18"

    # metrics come from the cell's MLflow run, all in one experiment
    client = MlflowClient(state["tracking_uri"])
    exp = client.get_experiment_by_name("test_grid")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    for cell_id in done:
        run = runs[cell_id]
        assert run.info.status == "FINISHED" and run.info.run_id == cells[cell_id]["metrics"]["run_id"]
        assert cells[cell_id]["metrics"]["val_accuracy"] == pytest.approx(run.data.metrics["val_accuracy"])
        assert run.data.params["detach_teacher"] == "True"
        assert run.data.tags["monai_rd.method"] == "rd_detach"

    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["cell_id"] for r in rows) == sorted(done)
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
    tables = open(out / "tables.md").read()
    assert "busi__r18__resnet18__broken__s0" in tables and "| rd_detach |" in tables
    assert (out / "methods.png").stat().st_size > 1000

    # second invocation (through the CLI): done cells are not re-run, the failed one is retried (and fails again)
    finished_before = {k: cells[k]["finished"] for k in done}
    code = main(["reproduce", "--grid", grid_file, "--output_dir", str(out), "--fabricate", "--no_progress"])
    assert code == 1
    assert len(bundle_launches) == 3 and "busi__r18__resnet18__broken__s0" in bundle_launches[-1][-1]
    state2 = json.load(open(out / "state.json"))
    assert {k: state2["cells"][k]["finished"] for k in done} == finished_before
    assert state2["cells"]["busi__r18__resnet18__broken__s0"]["attempts"] == 2


FOLD_GRID = """
name: folds_grid
seeds: [0]
folds: 2
overrides: {max_epochs: 1, image_size: 32, batch_size: 4, num_workers: 0, progress_bar: false}
datasets:
  busi: {bundle: rd_busi, synthetic: {layout: busi, n: 8, size: 32}}
teachers:
  r18: {name: "torchvision:resnet18", weights: random}
students:
  resnet18: {name: resnet18}
methods:
  student: {method: student, uses_teacher: false}
  rd: {method: rd}
"""


@pytest.mark.slow
def test_two_fold_grid_reports_the_test_split(tmp_path):
    """`monai-rd reproduce` on a 2-fold CPU grid: a run per fold, one fixed test split, test-split tables."""
    from monai_rd.cli import main

    grid_file = _write(tmp_path / "grid.yaml", FOLD_GRID)
    out = tmp_path / "out"
    assert main(["reproduce", "--grid", grid_file, "--output_dir", str(out), "--fabricate", "--no_progress"]) == 0
    state = json.load(open(out / "state.json"))
    ids = sorted(state["cells"])
    assert ids == sorted(
        f"busi__{t}__resnet18__{m}__s0__f{f}" for t, m in (("noteacher", "student"), ("r18", "rd")) for f in (0, 1)
    )
    datalists = [
        json.load(open(out / "cells" / f"busi__noteacher__resnet18__student__s0__f{f}" / "datalist.json"))
        for f in (0, 1)
    ]
    names = [{k: {i["image"] for i in d[k]} for k in ("training", "validation", "test")} for d in datalists]
    assert names[0]["test"] == names[1]["test"] and not names[0]["validation"] & names[1]["validation"]
    assert [(d["folds"], d["fold"]) for d in datalists] == [(2, 0), (2, 1)]
    for record in state["cells"].values():
        m = record["metrics"]
        assert m["split_protocol"] == "holdout"
        assert m["test_accuracy_ci_low"] <= m["test_accuracy"] <= m["test_accuracy_ci_high"]
        assert m["test_num_samples"] == len(names[0]["test"])
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert {(r["method"], r["metric"], r["split_protocol"], r["n_runs"]) for r in summary} == {
        ("student", "test_accuracy", "holdout", "2"),
        ("rd", "test_accuracy", "holdout", "2"),
    }
    tables = open(out / "tables.md").read()
    assert "Split protocol: holdout (training / validation (model selection) / test (reported)" in tables
    assert "2-fold cross-validation, test split fixed" in tables
    assert "| busi (test_accuracy) | resnet18 | r18 |" in tables
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["fold"] for r in rows} == {"0", "1"} and all("test_f1_macro_ci_high" in r for r in rows)


@pytest.mark.slow
def test_fast_run_starts_each_table2_row_through_the_bundle(tmp_path):
    """`monai-rd reproduce --fast_run --fabricate` on the paper's Table 2 grid: one cell per row (the grid's distinct
    recipes; Table 3 and 4 add methods without overrides, which tests/bundle/test_bundle_methods.py trains through the
    bundle) starts through the real runner and bundle, and MLflow records what each row names: no CKA term in the
    two '+ KD' rows, CKA in RD, the head co-trained by both branches in the co-training rows, the full-width g, and
    each row's method id (student, direct_reprogramming, rd) reaching the bundle."""
    from mlflow.tracking import MlflowClient

    from monai_rd.cli import main

    grid_file = os.path.join(REPO, "grids", "paper_table2_ablation.yaml")
    rows = ("student", "di_reprog_kd", "co_reprog_kd", "rd")
    ids = [f"busi__{'noteacher' if r == 'student' else 'pmc_clip'}__resnet18__{r}__s0" for r in rows]
    out = tmp_path / "out"
    code = main(["reproduce", "--grid", grid_file, "--output_dir", str(out), "--fabricate", "--fast_run",
                 "--no_progress", "--only", *ids])  # fmt: skip
    state = json.load(open(out / "state.json"))
    assert code == 0 and sorted(state["cells"]) == sorted(ids), state
    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlruns.db")
    experiment = client.get_experiment_by_name("paper_table2_ablation")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    for cell_id, row in zip(ids, rows):
        overrides = json.load(open(out / "cells" / cell_id / "overrides.json"))
        assert (overrides["max_epochs"], overrides["image_size"]) == (1, 32)
        params = runs[cell_id].data.params
        assert params["max_epochs"] == "1" and params["reprogrammer_budget"] == "None", cell_id
        method = {"student": "student", "di_reprog_kd": "direct_reprogramming"}.get(row, "rd")
        assert params["method"] == method, cell_id  # the grid's method id reaches the bundle
        if row == "student":
            continue
        assert params["loss_schedule"] == "paper" and params["teacher_weights_source"] == "random", cell_id
        cka = [m.value for m in client.get_metric_history(runs[cell_id].info.run_id, "weight_cka")]
        kd = [m.value for m in client.get_metric_history(runs[cell_id].info.run_id, "weight_kd")]
        assert kd and kd[0] == 1.0, (cell_id, kd)  # the paper's schedule: KD from 1 at the first step
        assert (cka and cka[0] == 1.0) if row == "rd" else set(cka) <= {0.0}, (cell_id, cka)
        if row != "di_reprog_kd":
            assert params["teacher_trains_head"] == "True", cell_id

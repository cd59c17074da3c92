"""Every cell of every grid in grids/ resolves through MONAI's own parser, with its overrides file exactly as
`monai-rd reproduce` writes it; each Table-2 row builds what its label says (components, schedule, size of g)."""

from __future__ import annotations

import glob
import json
import os

import pytest
import torch
from monai.bundle import ConfigParser

from monai_rd.bundle import bundle_root
from monai_rd.experiments.protocol import _bundle_has_method, cell_overrides, expand_cells, load_grid
from monai_rd.losses import rd_schedule
from monai_rd.methods import build_method
from monai_rd.networks import Reprogrammer, StudentClassifier, build_teacher
from tests.conftest import REPO

GRIDS = sorted(glob.glob(os.path.join(REPO, "grids", "*.yaml")))
#: what differs between two runs of one cell's recipe (seed, fold and where it writes): not part of the recipe
PER_RUN = ("seed", "fold", "output_dir", "run_name", "experiment_name", "tracking_uri")
#: the bundle ids that make a cell's recipe, resolved for every distinct cell
RECIPE = ("method", "method_options", "loss_schedule", "loss_weights", "reprogrammer_budget", "teacher_trains_head",
          "teacher_warmup", "teacher", "student", "max_epochs", "image_size", "batch_size", "learning_rate")  # fmt: skip


def resolved_cells(path: str, tmp_path, fast_run: bool = False) -> dict[str, dict]:
    """Cell id -> its resolved recipe (:data:`RECIPE` ids and the effective RD weights), one cell per distinct
    (bundle, overrides) up to :data:`PER_RUN`; raises what MONAI raises for a cell that cannot start."""
    grid = load_grid(path)
    seen, out = set(), {}
    for cell in expand_cells(grid):
        config = os.path.join(bundle_root(grid.datasets[cell.dataset]["bundle"]), "configs", "train.json")
        overrides = cell_overrides(grid, cell, str(tmp_path), grid.datasets[cell.dataset].get("dataset_dir", "D"),
                                   f"sqlite:///{tmp_path}/mlruns.db", fast_run)  # fmt: skip
        if not _bundle_has_method(config):  # as run_cell does
            overrides.pop("method")
        key = json.dumps(
            [config, {k: v for k, v in overrides.items() if k not in PER_RUN}], sort_keys=True, default=str
        )
        if key in seen:
            continue
        seen.add(key)
        overrides_file = tmp_path / "overrides.json"
        overrides_file.write_text(json.dumps(overrides))  # the runner's atomic_write_json writes this same JSON
        parser = ConfigParser()
        parser.read_config([config, str(overrides_file)])
        for name in overrides:  # every override reaches an id that resolves
            parser.get_parsed_content(name)
        recipe = {name: parser.get_parsed_content(name) for name in RECIPE if name in parser}
        assert "loss_weights=monai_rd.losses.rd_schedule(@loss_schedule, @loss_weights)" in parser["method_def"]
        recipe["weights"] = rd_schedule(recipe["loss_schedule"], recipe["loss_weights"])
        out[cell.id] = recipe
    return out


@pytest.mark.parametrize("fast_run", [False, True], ids=["as-written", "fast-run"])
@pytest.mark.parametrize("path", GRIDS, ids=os.path.basename)
def test_every_cell_of_every_grid_resolves_through_monais_parser(path, fast_run, tmp_path):
    """Every distinct cell, as the runner writes its overrides (and with `--fast_run`'s suffix over them)."""
    cells = resolved_cells(path, tmp_path, fast_run)
    assert cells
    if fast_run:
        for cell_id, recipe in cells.items():
            assert (recipe["max_epochs"], recipe["image_size"], recipe["batch_size"]) == (1, 32, 4), cell_id
    grid = load_grid(path)
    for cell_id, recipe in cells.items():
        method = next(m for m in grid.methods.values() if m["method"] == recipe.get("method", "rd"))
        for name, value in method.get("overrides", {}).items():  # what the method row sets is what runs
            if "#" not in name:
                assert recipe.get(name, value) == value, (cell_id, name)
        if os.path.basename(path).startswith("paper_"):  # the paper's full-width g in every paper cell
            assert recipe["reprogrammer_budget"] is None, cell_id


LINEAR = {"start": 1.0, "end": 0.0, "schedule": "linear"}


def test_each_table2_row_runs_what_its_label_says(tmp_path):
    """Student alone; Di. Reprog. + KD (no CKA); Co. Reprog. + KD (no CKA); RD: every row on the paper's schedule
    (KD and CKA from 1 falling linearly from the first step), the reprogramming rows with the same full-width g."""
    cells = resolved_cells(os.path.join(REPO, "grids", "paper_table2_ablation.yaml"), tmp_path)
    rows = {}
    for cell_id, recipe in cells.items():
        if cell_id.startswith("busi") and "pmc_clip" in cell_id or cell_id.startswith("busi") and "student" in cell_id:
            rows[recipe["method"] + ("+cka0" if recipe["loss_weights"].get("cka") == 0.0 else "")] = recipe
    assert set(rows) == {"student", "direct_reprogramming+cka0", "rd+cka0", "rd"}, sorted(rows)
    torch.manual_seed(0)
    teacher = build_teacher(rows["rd"]["teacher"], input_size=32)  # PMC-CLIP RN50, random weights
    built, widths = {}, {}
    for name, recipe in rows.items():
        student = StudentClassifier(recipe["student"], 3)
        method = build_method(recipe["method"], teacher=teacher if recipe["method"] != "student" else None,
                              student=student, num_classes=3, image_size=32, loss_weights=recipe["weights"],
                              teacher_trains_head=recipe["teacher_trains_head"], teacher_warmup=recipe["teacher_warmup"],
                              reprogrammer_budget=recipe["reprogrammer_budget"], **recipe["method_options"])  # fmt: skip
        built[name] = method.loss_weights
        for g in (m for m in method.network.modules() if isinstance(m, Reprogrammer)):
            widths[name] = sum(p.numel() for p in g.parameters())
    assert set(built["student"]) == {"ce_student"} or not any(built["student"].get(t) for t in ("kd", "cka"))
    assert built["direct_reprogramming+cka0"] == {"ce_student": 1.0, "kd": LINEAR, "cka": 0.0}
    assert built["rd+cka0"] == {"ce_teacher": 1.0, "ce_student": 1.0, "kd": LINEAR, "cka": 0.0}
    assert built["rd"] == {"ce_teacher": 1.0, "ce_student": 1.0, "kd": LINEAR, "cka": LINEAR}
    assert rows["rd"]["teacher_trains_head"] is True and rows["rd"]["teacher_warmup"] is False
    # one g for the three reprogramming rows: the full width (the bundles' default would bottleneck it)
    assert len(set(widths.values())) == 1 and len(widths) == 3, widths
    bottlenecked = build_method("rd", teacher=teacher, student=StudentClassifier("resnet18", 3), num_classes=3,
                                image_size=32).network.reprogrammer  # fmt: skip
    assert sum(p.numel() for p in bottlenecked.parameters()) < 0.8 * widths["rd"]  # 2.10 M against 2.89 M


def test_a_partial_loss_weights_override_changes_only_the_terms_it_names():
    weights = rd_schedule("warmup", {"cka": 0})
    assert weights["cka"] == 0
    assert weights["kd"] == {"start": 1.0, "end": 0.0, "schedule": "linear", "warmup": 0.2}  # still the schedule
    assert weights["ce_teacher"] == weights["ce_student"] == 1.0
    assert rd_schedule("paper", {"kd": {"start": 2.0, "end": 0.5}})["kd"] == {"start": 2.0, "end": 0.5}
    with pytest.raises(ValueError, match=r"\['ckaa'\].*not RD loss terms"):
        rd_schedule("paper", {"ckaa": 0})

"""A dry run of every cell of the paper grids (grids/paper_table3.yaml, paper_table4.yaml) on the paper's full-size
teacher architectures (random weights) at 32 px: each builds and trains two steps of each stage."""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml
from monai.bundle import ConfigParser

from monai_rd.methods import dry_run_method
from monai_rd.networks import StudentClassifier, build_teacher
from tests.conftest import BUNDLES

SIZE = 32
ROOT = os.path.dirname(BUNDLES)


def _grid_cells(path: str):
    grid = yaml.safe_load(open(path))
    cells = set()
    for dataset in grid["datasets"].values():
        parser = ConfigParser(json.load(open(os.path.join(BUNDLES, dataset["bundle"], "configs", "train.json"))))
        setup = (len(parser.get_parsed_content("class_names")), dataset["bundle"] == "rd_chestxray")
        for spec in grid["methods"].values():
            for teacher_spec in grid["teachers"].values():
                for student in grid["students"].values():
                    cells.add((setup, teacher_spec["name"], student["name"], spec["method"]))
    return sorted(cells)


def _distinct_code_paths(cells):
    """One cell per (single/multi-label, teacher, student, method): the number of classes only sets the width of
    the heads, so the 2-, 3-, 4- and 7-class setups of one (teacher, student, method) run the same code."""
    chosen = {}
    for (num_classes, multi_label), teacher, student, method in cells:
        chosen.setdefault(
            (multi_label, teacher, student, method), ((num_classes, multi_label), teacher, student, method)
        )
    return sorted(chosen.values())


GRID_CELLS = _grid_cells(os.path.join(ROOT, "grids", "paper_table3.yaml"))
GRID_CELLS += [c for c in _grid_cells(os.path.join(ROOT, "grids", "paper_table4.yaml")) if c not in GRID_CELLS]
GRID_CELLS = _distinct_code_paths(GRID_CELLS)


@pytest.mark.slow
@pytest.mark.parametrize("teacher", sorted({cell[1] for cell in GRID_CELLS}))
def test_every_cell_of_the_paper_grids_passes_a_dry_run(teacher):
    """Every (label setup, teacher, student, method) of grids/paper_table3.yaml and paper_table4.yaml (seeds and
    datasets with the same labels differ only in data): build on the grid's architectures (random weights, 32 px)
    and train two steps of each stage on fabricated images and labels (multi-label BCE for rd_chestxray). One test
    per teacher: a failure names it, and the file (7 minutes on one worker) runs beside the rest of the tier."""
    failures = []
    torch.manual_seed(0)  # random weights, but the same ones on every run: the answer is reproducible
    full = {teacher: build_teacher(teacher, input_size=SIZE)}
    for (num_classes, multi_label), tname, sname, method in [c for c in GRID_CELLS if c[1] == teacher]:
        torch.manual_seed(0)
        try:
            steps = 2 if method == "lora_kd" else 1  # LoRA's A moves from the second step on
            batch = 16 if method == "semckd" else 4
            dry_run_method(method, full[tname], StudentClassifier(sname, num_classes), num_classes,
                           multi_label=multi_label, image_size=SIZE, batch_size=batch, steps=steps)  # fmt: skip
        except Exception as e:  # collect them all, then fail naming each
            failures.append(f"{tname}/{sname}/{method}/{num_classes}{'ml' if multi_label else ''}: {e}")
    assert not failures, "\n".join(failures)

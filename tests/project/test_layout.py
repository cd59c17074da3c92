"""The package layout: nothing loose at the root, and imports that only run downwards between layers.

Layers, highest first (DESIGN.md section 2)::

    cli -> experiments, deploy -> engines, handlers, methods, bundle -> networks, losses, metrics, data,
    transforms, visualize -> utils

A module may import from its own layer or any lower one, never from a higher one. Every import is checked,
deferred (function-level) imports included: an arrow is an arrow wherever it is written.
"""

from __future__ import annotations

import ast
import pathlib

import pytest
from tests.helpers import REPO

PACKAGE = pathlib.Path(REPO) / "monai_rd"

LAYERS = {
    "utils": 0,
    "networks": 1,
    "losses": 1,
    "metrics": 1,
    "data": 1,
    "transforms": 1,
    "visualize": 1,
    "engines": 2,
    "handlers": 2,
    "methods": 2,
    "bundle": 2,
    "experiments": 3,
    "deploy": 3,
    "cli": 4,
}


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _subpackage(path: pathlib.Path) -> str | None:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else None


def _imported_subpackages(path: pathlib.Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "monai_rd":
                continue
            if len(parts) > 1:
                yield node.lineno, parts[1]
            else:  # from monai_rd import networks
                for alias in node.names:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            yield node.lineno, "<relative>"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "monai_rd" and len(parts) > 1:
                    yield node.lineno, parts[1]


def test_nothing_loose_at_the_package_root():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"modules at monai_rd/ root: {loose}; give each a home in a sub-package"
    assert set(LAYERS) == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downwards(path):
    own = _subpackage(path)
    if own is None:
        return  # monai_rd/__init__.py names the sub-packages (lazily)
    bad = []
    for lineno, target in _imported_subpackages(path):
        if target == "<relative>":
            bad.append(f"line {lineno}: relative import (write monai_rd.<layer>...)")
        elif target in LAYERS and LAYERS[target] > LAYERS[own]:
            bad.append(f"line {lineno}: {own} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[target]})")
        elif target not in LAYERS and target not in ("__version__",):
            bad.append(f"line {lineno}: unknown sub-package monai_rd.{target}")
    assert not bad, f"{path.relative_to(PACKAGE)}: " + "; ".join(bad)


def test_readme_public_api_imports():
    """The names the README promises import from where it says."""
    from monai_rd.engines import RDEvaluator, RDTrainer  # noqa: F401
    from monai_rd.handlers import CKAMonitor, LossWeightSchedule  # noqa: F401
    from monai_rd.losses import CKALoss, KDLoss, RDLoss, linear_cka  # noqa: F401
    from monai_rd.networks import RDNet, Reprogrammer, build_student, build_teacher  # noqa: F401
    from monai_rd.transforms import load_preset  # noqa: F401


# issue 27: one home per name; the old import paths (bundles' configs, methods/registry.py, pickled models, user
# code) still resolve, to the very same object
ONE_HOME = {
    "monai_rd.data.datalist": {"read_datalist": ["monai_rd.bundle", "monai_rd.bundle.paths", "monai_rd.data"],
                               "SplitNotFoundError": ["monai_rd.bundle", "monai_rd.data"]},
    "monai_rd.data.errors": {"BadInputError": ["monai_rd.data", "monai_rd.data.checks"]},
    "monai_rd.data.checks": {"verify_image": ["monai_rd.data.indexers.busi"]},
    "monai_rd.utils.mlflow_runs": {
        "find_run_id": ["monai_rd.handlers", "monai_rd.handlers.best_model_report"],
        "find_mlflow_run": ["monai_rd.bundle", "monai_rd.bundle.next_steps"],
        "effective_tracking_uri": ["monai_rd.handlers", "monai_rd.handlers.mlflow_resilient"],
        "read_run_metrics": ["monai_rd.experiments.protocol"],
    },
    "monai_rd.networks.layer_taps": {
        name: ["monai_rd.networks.nets.method_nets"]
        for name in ("LayerTaps", "default_feature_layer", "default_feature_layers", "probe_forward", "tap_layout")
    },
    "monai_rd.networks.nets.teacher_classifiers": {
        "TeacherClassifier": ["monai_rd.networks", "monai_rd.networks.nets.method_nets"],
        "VolumeTeacherClassifier": ["monai_rd.networks", "monai_rd.deploy.cost"],
    },
    "monai_rd.experiments.protocol.grid": {"load_grid": ["monai_rd.experiments.protocol"]},
    "monai_rd.experiments.protocol.runner": {"run_grid": ["monai_rd.experiments.protocol"]},
    "monai_rd.experiments.protocol.report": {"write_reports": ["monai_rd.experiments.protocol"]},
}  # fmt: skip


@pytest.mark.parametrize("home", sorted(ONE_HOME))
def test_moved_names_have_one_home_and_keep_their_old_paths(home):
    import importlib

    module = importlib.import_module(home)
    for name, old_paths in ONE_HOME[home].items():
        obj = getattr(module, name)
        assert getattr(obj, "__module__", home) == home, f"{name} is defined in {obj.__module__}, not {home}"
        for old in old_paths:
            assert getattr(importlib.import_module(old), name) is obj, f"{old}.{name} is not {home}.{name}"

"""The seven bundles share one structure: common train.json ids stay identical; evaluate.json is an overlay."""

import collections
import json
import os
import re

import pytest

from monai_rd.bundle import bundle_names
from tests.conftest import BUNDLES

NAMES = tuple(n.removeprefix("rd_") for n in bundle_names())  # the one list of bundles
#: ids that name the dataset: they differ by construction
PER_DATASET = {"dataset_dir", "dataset_name", "class_names"}
#: the declared deviations from the shared structure, and why
DEVIATIONS = {
    "datalist": {"clinical", "mosmed"},  # clinical: index_class_folders with slice options; mosmed: labeling
    # covid: CT intensity option; clinical: its own reader; mosmed: volume preset options
    "train::preprocessing": {"covid", "clinical", "mosmed"},
    "validate::preprocessing": {"covid", "clinical", "mosmed"},
    # volumes: 3D students and teachers built at the volume size, the cache builds its teacher the same way
    "teacher_def": {"mosmed"},
    # the defaults of volumes: 96^3 cubes, batch 2, a 3D teacher (or a 2D one slice-wise), a MONAI 3D student
    **{key: {"clinical", "mosmed"} for key in ("image_size", "batch_size", "teacher", "teacher_weights", "student")},
    "student_def": {"clinical", "mosmed"},
    # the run's metadata.json records the input shape and channels of the bundles that can train on volumes
    "run_metadata": {"clinical", "mosmed"},
    "train::dataset": {"mosmed"},
    "validate::dataset": {"mosmed"},
    # volumes: an input shape of spatial_dims, no pyfunc server (it reads 2D image bytes)
    "train::handlers": {"chestxray", "clinical", "mosmed"},
    # ChestX-ray14 is multi-label: sigmoid outputs, BCE loss, per-finding AUC instead of accuracy
    "method_def": {"chestxray"},
    "registry_key_metric": {"chestxray"},
    "train::key_metric": {"chestxray"},
    "train::postprocessing": {"chestxray"},
    "validate::key_metric": {"chestxray"},
    "validate::additional_metrics": {"chestxray"},
}
UNNESTED = {"loss_weights", "method_options"}  # values compared whole


def _load(name, config="train.json"):
    with open(os.path.join(BUNDLES, f"rd_{name}", "configs", config), encoding="utf-8") as f:
        return json.load(f)


def _ids(config, name):
    """Top-level ids and one level below them, values as JSON with the bundle's own name abstracted."""
    out = {}
    for key, value in config.items():
        items = value.items() if isinstance(value, dict) and key not in UNNESTED else [(None, value)]
        for sub, v in items:
            out[key if sub is None else f"{key}::{sub}"] = json.dumps(v, sort_keys=True).replace(f"rd_{name}", "rd_<b>")
    return out


def test_common_train_ids_are_identical_across_bundles():
    ids = {n: _ids(_load(n), n) for n in NAMES}
    common = set.intersection(*(set(v) for v in ids.values()))
    assert len(common) > 100  # the shared structure is most of every bundle
    drift = []
    for key in sorted(common - PER_DATASET):
        majority, _ = collections.Counter(ids[n][key] for n in NAMES).most_common(1)[0]
        odd = {n for n in NAMES if ids[n][key] != majority}
        if odd - DEVIATIONS.get(key, set()):
            drift.append(f"{key}: {sorted(odd)} differ from the others")
    assert not drift, "train.json drifted between bundles (make the same edit in each):\n" + "\n".join(drift)


def test_every_bundle_indexes_and_preprocesses_through_the_registries():
    for name in (n for n in NAMES if n != "clinical"):  # rd_clinical indexes any folder with its own reader
        config = _load(name)
        assert "index_dataset(@dataset_format" in config["datalist"], name
        assert any("load_preset(@modality, 'train'" in str(t) for t in config["train"]["preprocessing"]["transforms"])


@pytest.mark.parametrize(
    "name", [n for n in NAMES if os.path.isfile(os.path.join(BUNDLES, f"rd_{n}", "configs", "evaluate.json"))]
)
def test_evaluate_is_an_overlay_on_train(name):
    train, evaluate = _load(name), _load(name, "evaluate.json")
    assert "imports" not in evaluate and "bundle_root" not in evaluate  # it inherits them from train.json
    merged = {**train, **evaluate}
    refs = set(re.findall(r"@(\w+(?:::\w+)*)", json.dumps(evaluate)))
    for ref in refs:  # every id the overlay references exists in the merged config
        node = merged
        for part in ref.split("::"):
            assert isinstance(node, dict) and part in node, f"{name}/evaluate.json references missing @{ref}"
            node = node[part]
    assert evaluate["datalist_key"] == "test"
    for key in ("image_size", "student", "class_names"):
        assert evaluate[key] == f"$@training_config['{key}']"


@pytest.mark.parametrize("name", NAMES)
def test_inference_reads_the_training_settings(name):
    inference = _load(name, "inference.json")
    assert inference["training_config"] == "$monai_rd.bundle.read_training_config(@output_dir)"
    remembered = [k for k in ("image_size", "student", "class_names", "modality") if k in inference]
    assert {"image_size", "student", "class_names"} <= set(remembered)
    check = next(e for e in inference["initialize"] if "check_matches_training" in e)
    for key in remembered:
        assert inference[key] == f"$@training_config['{key}']" and f"{key}=@{key}" in check


def test_every_bundle_starts_with_start_run_and_checks_its_epochs():
    for name in NAMES:
        train = _load(name)
        assert train["initialize"][0] == "$monai_rd.bundle.start_run()", name
        assert train["run"][0].startswith("$monai_rd.bundle.check_epochs_run("), name
        assert _load(name, "inference.json")["initialize"][0] == "$monai_rd.bundle.start_run()", name

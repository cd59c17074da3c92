"""``monai-rd cache-features`` on the rd_busi bundle, then the bundle trained from the cache without a teacher."""

from __future__ import annotations

import json
import os

import pytest
from monai.bundle import ConfigWorkflow

import monai_rd.networks
import monai_rd.networks.nets.teachers
from monai_rd.cli import main
from tests.helpers import REPO
from tests.helpers.weights import random_resnet18_weights

TRAIN_JSON = os.path.join(REPO, "bundles", "rd_busi", "configs", "train.json")
TEACHER = "torchvision:resnet18"


@pytest.fixture(scope="module")
def built(busi_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    weights = random_resnet18_weights(tmp / "teacher.pt", seed=0)
    args = ["cache-features", "--config_file", TRAIN_JSON, "--dataset_dir", busi_dir, "--output_dir",
            str(tmp / "out"), "--image_size", "32", "--teacher", TEACHER, "--teacher_weights", weights,
            "--feature_cache", str(tmp / "cache"), "--views", "2", "--dtype", "float16", "--batch_size", "8",
            "--chunk_size", "8", "--no_progress"]  # fmt: skip
    assert main(args) == 0
    return {"tmp": tmp, "weights": weights, "args": args, "cache": str(tmp / "cache"), "data": busi_dir}


def test_cli_builds_both_splits(built, capsys):
    for split, views in (("training", 2), ("validation", 1)):
        manifest = json.load(open(os.path.join(built["cache"], split, "manifest.json")))
        assert manifest["complete"] and manifest["views"] == views and manifest["dtype"] == "float16"
        assert manifest["feature_shape"] == [512]
        assert manifest["key_parts"]["teacher"]["name"] == TEACHER
    # a second run finds everything valid: it does not even load the teacher
    assert main(built["args"]) == 0
    assert "Loading teacher" not in capsys.readouterr().out


@pytest.mark.slow
def test_bundle_trains_from_cache_without_building_the_teacher(built, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the teacher builder was called while training from a complete cache")

    monkeypatch.setattr(monai_rd.networks, "build_teacher", refuse)
    monkeypatch.setattr(monai_rd.networks.nets.teachers, "build_teacher", refuse)
    monkeypatch.setattr(monai_rd.networks.TEACHERS, "build", refuse)
    out = str(built["tmp"] / "train_out")
    workflow = ConfigWorkflow(
        config_file=TRAIN_JSON, workflow_type="train", dataset_dir=built["data"], output_dir=out, image_size=32,
        batch_size=8, num_workers=0, max_epochs=1, progress_bar=False, teacher=TEACHER,
        teacher_weights=built["weights"], feature_cache=built["cache"],
    )  # fmt: skip
    workflow.initialize()
    network = workflow.parser.get_parsed_content("network")
    assert network.teacher is None  # RDNet built from the cache manifest's feature shape
    workflow.run()
    workflow.finalize()
    trainer = workflow.parser.get_parsed_content("train::trainer")
    evaluator = workflow.parser.get_parsed_content("validate::evaluator")
    assert trainer.state.epoch == 1 and 0.0 <= evaluator.state.metrics["val_accuracy"] <= 1.0
    assert os.path.isfile(os.path.join(out, "model.pt"))
    executed = json.load(open(os.path.join(out, "executed_config.json")))
    assert json.dumps(executed).count(built["cache"]) >= 1  # the cache is recorded with the run


@pytest.mark.slow
def test_bundle_refuses_a_mismatched_cache(built):
    from monai_rd.data import FeatureCacheError

    workflow = ConfigWorkflow(
        config_file=TRAIN_JSON, workflow_type="train", dataset_dir=built["data"], output_dir=str(built["tmp"] / "o2"),
        image_size=48, batch_size=8, num_workers=0, max_epochs=1, progress_bar=False, teacher=TEACHER,
        teacher_weights=built["weights"], feature_cache=built["cache"],
    )  # fmt: skip
    workflow.initialize()
    with pytest.raises(RuntimeError) as info:  # other image_size -> other transform -> the cache is refused
        workflow.parser.get_parsed_content("train::dataset")
    cause = info.value  # MONAI wraps the builder's error: find ours in the chain
    while cause is not None and not isinstance(cause, FeatureCacheError):
        cause = cause.__cause__
    assert cause is not None, repr(info.value)
    assert "transform" in str(cause) and os.path.join(built["cache"], "training", "manifest.json") in str(cause)

"""The run record is what ran: ``executed_config.json`` after every command-line override, and the same values as
MLflow params (read back with MLflow's own client from its SQLite store)."""

import json
import os

import pytest
import torch
from ignite.engine import Engine
from monai.bundle import ConfigParser

from monai_rd.bundle import plain_values, write_executed_config
from monai_rd.losses import RD_SCHEDULES
from monai_rd.networks import amp_effect
from tests.conftest import BUNDLES

TRAIN = os.path.join(BUNDLES, "rd_busi", "configs", "train.json")

#: every boolean and enum id of the bundle, set to a value other than its default, as a command line writes it
#: (text, as ``python -m monai.bundle run --amp true`` passes it) -> the value the run must record
OVERRIDES = {
    "resume": ("true", True),
    "amp": ("TRUE", True),
    "channels_last": ("1", True),
    "compile": ("true", True),
    "check_images": ("false", False),
    "progress_bar": ("false", False),
    "detach_teacher": ("true", True),
    "teacher_trains_head": ("True", True),
    "teacher_warmup": ("true", True),
    "on_bad_input": ("skip", "skip"),
    "amp_dtype": ("float16", "float16"),
    "loss_weight_unit": ("epoch", "epoch"),
    "loss_schedule": (next(s for s in RD_SCHEDULES if s != "warmup"), next(s for s in RD_SCHEDULES if s != "warmup")),
}


def _bundle_parser(busi_dir, out, **overrides):
    """rd_busi's train.json with ``overrides`` applied the way ``monai.bundle run`` applies ``--id value``."""
    parser = ConfigParser()
    parser.read_config(TRAIN)
    parser.update({"dataset_dir": busi_dir, "output_dir": str(out), "teacher": "resnet50", "teacher_weights": "random",
                   "student": "resnet18", "image_size": 32, "num_workers": 0, **overrides})  # fmt: skip
    parser.parse()
    parser.get_parsed_content("initialize::0")  # start_run: booleans from text, as in a real run
    return parser


def test_executed_config_and_mlflow_params_record_every_override(busi_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    parser = _bundle_parser(busi_dir, tmp_path, **{k: text for k, (text, _) in OVERRIDES.items()})
    path = parser.get_parsed_content("executed_config")
    assert path == os.path.join(str(tmp_path), "executed_config.json")
    executed = json.load(open(path))
    for key, (_, value) in OVERRIDES.items():
        assert executed[key] == value and type(executed[key]) is type(value), key
    assert executed["device"] == str(parser.get_parsed_content("device"))  # resolved, not the "$torch..." text
    assert executed["output_dir"] == str(tmp_path) and executed["class_names"] == ["benign", "malignant", "normal"]
    # what the machine decides: AMP autocasts on the device's own type; loss scaling is MONAI's GradScaler, which
    # turns itself off without CUDA (checked on the scaler itself, not on our function)
    device = torch.device(executed["device"])
    with torch.autocast(device.type, dtype=torch.float16):
        ran_in = torch.nn.Linear(2, 2).to(device)(torch.ones(1, 2, device=device)).dtype
    assert executed["amp_autocast"] == f"{str(ran_in).removeprefix('torch.')} on {device.type}"
    with pytest.warns(Warning):
        scaler = torch.cuda.amp.GradScaler()
    assert executed["amp_loss_scaling"] is scaler.is_enabled()

    # the bundle's own MLflow handler, on a real (empty) Ignite engine, logs the params to the SQLite store
    handlers = parser.get("train::handlers")
    index = next(i for i, h in enumerate(handlers) if h["_target_"].endswith("ResilientMLFlowHandler"))
    handler = parser.get_parsed_content(f"train::handlers::{index}")
    engine = Engine(lambda e, b: None)
    handler.start(engine)
    handler.close()
    client = MlflowClient(tracking_uri=parser.get_parsed_content("tracking_uri"))
    (run,) = client.search_runs([client.get_experiment_by_name("rd_busi").experiment_id])
    params = run.data.params
    plain = plain_values(executed)
    assert set(OVERRIDES) | {"device", "amp_autocast", "amp_loss_scaling", "dataset_dir"} <= set(plain)
    for key, value in plain.items():  # every plain top-level id, as MONAI's handler writes it (str)
        assert params[key] == str(value), key
    assert not os.path.isfile(tmp_path / "mlflow_not_logged.json")


def test_executed_config_keeps_a_nested_override_and_the_file_defaults(busi_dir, tmp_path):
    parser = _bundle_parser(busi_dir, tmp_path, **{"teacher_def::pool": "avg"})
    executed = json.load(open(parser.get_parsed_content("executed_config")))
    assert executed["teacher_def"]["pool"] == "avg"  # a nested --teacher_def::pool override is recorded too
    assert executed["amp"] is False and executed["amp_autocast"] == "off" and executed["amp_loss_scaling"] is False
    assert executed["on_bad_input"] == "error" and executed["max_epochs"] == json.load(open(TRAIN))["max_epochs"]


def test_write_executed_config_outside_a_bundle_reads_the_file_and_names_bad_ids(tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"a": 1, "b": "$1 + 1", "c": {"_target_": "x"}}))
    path = write_executed_config(config, {"b": 2}, tmp_path / "out.json", effective={"e": "on"})
    assert json.load(open(path)) == {"a": 1, "b": 2, "c": {"_target_": "x"}, "e": "on"}
    assert plain_values(path) == {"a": 1, "b": 2, "e": "on"}
    with pytest.raises(KeyError, match=r"\['z'\] are not top-level ids"):
        write_executed_config(config, {"z": 1}, tmp_path / "out.json")
    with pytest.raises(KeyError, match=r"effective ids \['a'\]"):
        write_executed_config(config, {}, tmp_path / "out.json", effective={"a": 0})


def test_amp_effect_names_autocast_and_loss_scaling():
    assert amp_effect(False, "bfloat16", "cpu") == {"amp_autocast": "off", "amp_loss_scaling": False}
    assert amp_effect(True, "bf16", "cpu") == {"amp_autocast": "bfloat16 on cpu", "amp_loss_scaling": False}

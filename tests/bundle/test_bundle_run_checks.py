"""What a bundle run checks before and while it runs: booleans from text, empty epochs, the real error last,
the training run's settings, the datalist split."""

import json
import sys

import pytest
import torch
from monai.bundle import ConfigParser
from torch.utils.data import DataLoader

from monai_rd.bundle import (
    ConfigError,
    EmptyEpochError,
    check_epochs_run,
    check_matches_training,
    parse_bool,
    read_training_config,
    remembered_settings,
    report_error_last,
    root_error,
)
from monai_rd.data import SplitNotFoundError, read_datalist, write_datalist


@pytest.mark.parametrize("text,value", [("true", True), ("TRUE", True), ("True", True), (True, True), (1, True),
                                        ("1", True), ("false", False), ("False", False), ("0", False), (0, False),
                                        (False, False)])  # fmt: skip
def test_parse_bool_accepts_what_a_command_line_writes(text, value):
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["maybe", 2, "", None, 0.5])
def test_parse_bool_leaves_anything_else_for_the_type_check(text):
    assert parse_bool(text) is text


def _parser(**overrides):
    parser = ConfigParser(
        {
            "imports": ["$import monai_rd"],
            "resume": False,
            "amp": False,
            "batch_size": 8,
            "not_resume": "$not @resume",
            "initialize": ["$monai_rd.bundle.start_run()", "$(@resume, @amp, @not_resume)"],
        }
    )
    parser.update(overrides)
    parser.parse()
    return parser


def test_start_run_turns_text_booleans_into_booleans_before_they_are_used(monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    parser = _parser(resume="true", amp=0)
    parser.get_parsed_content("initialize::0")
    assert parser.get_parsed_content("initialize::1") == (True, False, False)
    assert sys.excepthook is report_error_last


def test_start_run_reads_the_gate_as_a_boolean_or_auto(monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    for text, value in (("true", True), ("False", False), ("auto", "auto")):
        parser = _parser(teacher_gate=text)
        parser.get_parsed_content("initialize::0")
        assert parser.get_parsed_content("teacher_gate") == value


def test_a_non_boolean_is_still_refused_naming_the_key(monkeypatch):
    from monai_rd.bundle import check_run_params

    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    parser = _parser(resume="maybe")
    parser.get_parsed_content("initialize::0")
    with pytest.raises(ConfigError, match="'resume' = 'maybe'"):
        check_run_params({"resume": parser.get_parsed_content("resume")})


def test_root_error_skips_monai_wrappers_and_is_printed_last(capsys):
    parser = ConfigParser({"imports": ["$import monai_rd"], "x": "$monai_rd.bundle.check_run_params({'seed': -1})"})
    with pytest.raises(RuntimeError, match="Failed to evaluate") as info:
        parser.get_parsed_content("x")
    root = root_error(info.value)
    assert isinstance(root, ConfigError) and "'seed' = -1" in str(root)
    report_error_last(type(info.value), info.value, info.value.__traceback__)
    err = capsys.readouterr().err.rstrip().splitlines()
    assert "Traceback (most recent call last)" in err[0]  # the full traceback is still there
    assert err[-1].startswith("Fix the value") and any(ln.startswith("monai_rd.bundle.config_check.ConfigError")
                                                        for ln in err[-4:])  # fmt: skip
    assert not any("RuntimeError" in ln for ln in err[err.index("The error that stopped the bundle:") :])


def test_report_error_last_adds_nothing_to_an_unwrapped_error(capsys):
    try:
        raise FileNotFoundError("folder x does not exist")
    except FileNotFoundError as e:
        report_error_last(type(e), e, e.__traceback__)
    err = capsys.readouterr().err.rstrip().splitlines()
    assert err[-1] == "FileNotFoundError: folder x does not exist" and err.count(err[-1]) == 1


def test_an_epoch_of_zero_iterations_is_refused():
    data = [{"image": torch.zeros(3)}] * 28
    with pytest.raises(EmptyEpochError, match=r"training split has 28 item\(s\), fewer than batch_size 32.*"
                                              r"--batch_size 28"):  # fmt: skip
        check_epochs_run({"training": DataLoader(data, batch_size=32, drop_last=True)})
    with pytest.raises(EmptyEpochError, match="validation split is empty"):
        check_epochs_run({"training": DataLoader(data, batch_size=8), "validation": DataLoader([], batch_size=8)})
    check_epochs_run({"training": DataLoader(data, batch_size=28, drop_last=True)})  # one full batch: fine


def test_drop_last_skipping_images_is_one_line_naming_how_many(caplog):
    from monai_rd.data import make_dataloader

    data = [{"image": torch.zeros(3)}] * 36
    with caplog.at_level("WARNING", logger="monai_rd"):
        check_epochs_run({"training": make_dataloader(data, batch_size=32, drop_last=True, num_workers=0),
                          "validation": make_dataloader(data[:10], batch_size=32, num_workers=0)})  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if r.name == "monai_rd"]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].startswith("training: 36 images, batch_size 32 with drop_last: 4 image(s) per epoch are skipped")
    assert "--batch_size 36 would use them all" in lines[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="monai_rd"):  # 36 = 4 x 9: nothing skipped, nothing said
        check_epochs_run({"training": make_dataloader(data, batch_size=9, drop_last=True, num_workers=0)})
    assert not [r for r in caplog.records if r.name == "monai_rd"]


def _training_run(tmp_path, **values):
    config = {"image_size": 64, "student": "resnet18", "class_names": ["a", "b"], "modality": "ultrasound",
              "datalist": "$monai_rd.data.index_dataset(...)", **values}  # fmt: skip
    (tmp_path / "executed_config.json").write_text(json.dumps(config))
    return read_training_config(tmp_path)


def test_the_training_settings_are_read_and_a_contradiction_refused(tmp_path):
    training = _training_run(tmp_path)
    assert remembered_settings(training) == {"image_size": 64, "student": "resnet18", "class_names": ["a", "b"],
                                             "modality": "ultrasound"}  # fmt: skip
    check_matches_training(training, image_size=64, student="resnet18", class_names=("a", "b"))
    with pytest.raises(ConfigError, match=r"--image_size 224: the checkpoint was trained with 64"):
        check_matches_training(training, image_size=224, student="resnet18")
    with pytest.raises(ConfigError, match="does not record the resolved 'datalist'"):
        check_matches_training(training, datalist=[])


def test_a_folder_that_is_no_training_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="executed_config.json' does not exist: --output_dir must be"):
        read_training_config(tmp_path)


def test_a_missing_split_names_the_split_and_the_lists(tmp_path):
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [{"image": "a.png"}], "validation": [], "classes": ["a", "b"],
                                "split_hash": "x"}))  # fmt: skip
    with pytest.raises(SplitNotFoundError) as info:
        read_datalist(path, "test")
    assert str(info.value).startswith(f"Datalist {str(path)!r} has no split 'test' (its splits: ['training', "
                                      "'validation'])")  # fmt: skip
    write_datalist({"training": [], "validation": [], "test": [{"image": "t.png", "label": 1}]}, path)
    assert read_datalist(path, "test") == [{"image": "t.png", "label": 1}]  # read and write: one module
    import monai_rd.bundle

    assert monai_rd.bundle.read_datalist is read_datalist  # the name the bundles' configs call


def test_a_2d_teacher_on_rd_mosmed_is_refused_before_training_naming_slicewise(tmp_path, capsys):
    """``rd_mosmed --teacher pmc_clip_rn50`` (a 2D teacher on volumes): refused when the method is built, before any
    iteration, with the fix (``--teacher slicewise:pmc_clip_rn50``) on the last line the bundle prints."""
    import os

    from monai_rd.data.synthetic import make_mosmed_like
    from tests.conftest import BUNDLES

    root = os.path.join(BUNDLES, "rd_mosmed")
    parser = ConfigParser()
    parser.read_config(os.path.join(root, "configs", "train.json"))
    parser.update({"bundle_root": root, "dataset_dir": make_mosmed_like(tmp_path / "mosmed", n_per_grade=3,
                   shape=(32, 32, 12)), "output_dir": str(tmp_path / "out"), "image_size": 32, "num_workers": 0,
                   "labeling": "binary", "teacher": "pmc_clip_rn50", "teacher_weights": "random"})  # fmt: skip
    parser.parse()
    with pytest.raises(RuntimeError, match="Failed to evaluate") as info:
        parser.get_parsed_content("method_def")
    assert isinstance(root_error(info.value), ValueError)
    report_error_last(type(info.value), info.value, info.value.__traceback__)
    last = capsys.readouterr().err.rstrip().splitlines()[-1]
    assert last.startswith("ValueError: teacher 'pmc_clip_rn50' is a 2D teacher")
    assert "--teacher slicewise:pmc_clip_rn50 " in last

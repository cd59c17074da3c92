"""``python -m monai.bundle verify_net_in_out`` on every bundle, with the run's own metadata (its class count and
input shape, written by training), and its refusal before any training with the real reason on the last line."""

import json
import os
import sys

import pytest
from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out

from monai_rd.bundle import bundle_names, report_error_last
from tests.conftest import BUNDLES, REPO

#: bundle -> (class names of a run, overrides): rd_clinical takes its classes from the folder (3 here, while its
#: shipped metadata.json says 2), rd_mosmed's binary labeling has 2 classes (its shipped file says 5)
RUNS = {
    "rd_busi": (["benign", "malignant", "normal"], {}),
    "rd_isic": (["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"], {}),
    "rd_covid": (["NonCOVID", "COVID"], {}),
    "rd_btc": (["glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"], {}),
    "rd_chestxray": ([f"finding{i}" for i in range(14)], {}),
    "rd_clinical": (["cyst", "normal", "tumour"], {}),
    "rd_mosmed": (["CT-0", "CT-1+"], {"labeling": "binary"}),
}


def _record_run(bundle, out, class_names, **overrides):
    """What a training run of ``bundle`` records before its first iteration: its train.json's own
    ``executed_config`` and ``run_metadata`` ids, resolved with the run's class names (no data needed)."""
    parser = ConfigParser()
    parser.read_config(os.path.join(BUNDLES, bundle, "configs", "train.json"))
    parser.update({"bundle_root": os.path.join(BUNDLES, bundle), "output_dir": str(out), "image_size": 32,
                   "class_names": class_names, **overrides})  # fmt: skip
    parser.parse()
    parser.get_parsed_content("executed_config")
    return parser.get_parsed_content("run_metadata")


@pytest.mark.parametrize("bundle", bundle_names())
def test_verify_net_in_out_passes_with_the_runs_metadata(bundle, tmp_path):
    assert bundle in RUNS, f"add {bundle!r} to RUNS: the class names of a run of it"
    class_names, overrides = RUNS[bundle]
    meta = _record_run(bundle, tmp_path, class_names, **overrides)
    assert meta == os.path.join(str(tmp_path), "metadata.json")
    pred = json.load(open(meta))["network_data_format"]["outputs"]["pred"]
    assert pred["num_channels"] == len(class_names) and pred["spatial_shape"] == [1, len(class_names)]
    assert pred["channel_def"] == {str(i): c for i, c in enumerate(class_names)}
    image = json.load(open(meta))["network_data_format"]["inputs"]["image"]
    assert image["spatial_shape"] == [32] * (3 if bundle == "rd_mosmed" else 2)
    # still valid bundle metadata (MONAI's verify_metadata, offline schema), and MONAI's own network check: the
    # network inference.json builds for this run maps the run's input to C outputs
    verify_metadata(meta_file=meta, filepath=os.path.join(REPO, "monai_rd", "schemas", "bundle_metadata_schema.json"))
    verify_net_in_out(net_id="network_def", meta_file=meta, device="cpu", output_dir=str(tmp_path),
                      config_file=os.path.join(BUNDLES, bundle, "configs", "inference.json"))  # fmt: skip


def test_the_shipped_metadata_of_rd_clinical_does_not_fit_a_three_class_run(tmp_path):
    """Why the run writes its own: the shipped file's fixed 2 classes cannot describe a 3-class folder."""
    _record_run("rd_clinical", tmp_path, RUNS["rd_clinical"][0])
    configs = os.path.join(BUNDLES, "rd_clinical", "configs")
    with pytest.raises(ValueError, match=r"output channel number `3` doesn't match: `2`"):
        verify_net_in_out(net_id="network_def", meta_file=os.path.join(configs, "metadata.json"), device="cpu",
                          config_file=os.path.join(configs, "inference.json"), output_dir=str(tmp_path))  # fmt: skip


def test_verify_before_training_puts_the_real_reason_last(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    configs = os.path.join(BUNDLES, "rd_clinical", "configs")
    with pytest.raises(RuntimeError, match="Failed to evaluate") as info:
        verify_net_in_out(net_id="network_def", meta_file=os.path.join(configs, "metadata.json"), device="cpu",
                          config_file=os.path.join(configs, "inference.json"), output_dir=str(tmp_path))  # fmt: skip
    assert sys.excepthook is report_error_last  # installed by the failing read, as `monai.bundle run` would
    sys.excepthook(type(info.value), info.value, info.value.__traceback__)
    last = capsys.readouterr().err.rstrip().splitlines()[-1]
    assert last.startswith("FileNotFoundError: ") and "executed_config.json" in last
    assert "output_dir of a finished training run" in last

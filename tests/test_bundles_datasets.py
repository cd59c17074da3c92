"""The rd_isic, rd_covid, rd_btc and rd_chestxray bundles train through ``python -m monai.bundle run`` on CPU."""

import json
import os

import pytest
import torch
from tests.conftest import BUNDLES, run_bundle

from monai_rd.data import synthetic

CASES = {
    "rd_isic": lambda d: synthetic.make_isic2018_like(d, n_per_class=4, size=32),
    "rd_covid": lambda d: synthetic.make_covid_ct_like(d, n_per_class=10, size=32),
    "rd_btc": lambda d: synthetic.make_btc_like(d, n_train_per_class=5, n_test_per_class=1, size=32),
    "rd_chestxray": lambda d: synthetic.make_chestxray14_like(d, n_patients=12, size=32),
}
FILES = ("configs/train.json", "configs/metadata.json", "configs/logging.conf", "docs/README.md", "LICENSE")


@pytest.mark.parametrize("bundle", sorted(CASES))
def test_bundle_has_the_rd_busi_files_and_override_ids(bundle):
    for name in FILES:
        assert os.path.isfile(os.path.join(BUNDLES, bundle, name)), name
    with open(os.path.join(BUNDLES, "rd_busi", "configs", "train.json")) as f:
        busi = json.load(f)
    with open(os.path.join(BUNDLES, bundle, "configs", "train.json")) as f:
        config = json.load(f)
    assert set(busi) <= set(config)  # every rd_busi id (dataset_dir, output_dir, teacher, ...) exists here too
    assert set(config["run_params"]) >= set(busi["run_params"])
    with open(os.path.join(BUNDLES, bundle, "configs", "metadata.json")) as f:
        meta = json.load(f)
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert pred["num_channels"] == len(pred["channel_def"])


@pytest.mark.parametrize("bundle", sorted(CASES))
def test_bundle_trains_on_fabricated_data(bundle, tmp_path):
    data = CASES[bundle](str(tmp_path / "data"))
    out = tmp_path / "out"
    run_bundle(
        os.path.join(BUNDLES, bundle, "configs", "train.json"),
        dataset_dir=data, output_dir=out, max_epochs=1, image_size=32, batch_size=4, num_workers=0,
        teacher="torchvision:resnet18", progress_bar=False,
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert (out / "model.pt").is_file()
    state = torch.load(out / "model.pt", weights_only=True)
    with open(os.path.join(BUNDLES, bundle, "configs", "metadata.json")) as f:
        n_out = json.load(f)["network_data_format"]["outputs"]["pred"]["num_channels"]
    head = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2][-1]
    assert head.shape[0] == n_out
    with open(out / "datalist.json") as f:
        datalist = json.load(f)
    assert datalist["training"] and datalist["validation"]

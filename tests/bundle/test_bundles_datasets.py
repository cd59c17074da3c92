"""The rd_isic, rd_covid, rd_btc and rd_chestxray bundles train through ``python -m monai.bundle run`` on CPU."""

import csv
import json
import os

import pytest
import torch
from tests.helpers.forkserver import run as run_python
from tests.conftest import BUNDLES, run_bundle

from monai_rd.data import synthetic

CASES = {
    "rd_isic": lambda d: synthetic.make_isic2018_like(d, n_per_class=4, size=32),
    "rd_covid": lambda d: synthetic.make_covid_ct_like(d, n_per_class=10, size=32),
    "rd_btc": lambda d: synthetic.make_btc_like(d, n_train_per_class=5, n_test_per_class=1, size=32),
    "rd_chestxray": lambda d: synthetic.make_chestxray14_like(d, n_patients=12, size=32),
}
FILES = (
    "configs/train.json", "configs/evaluate.json", "configs/inference.json", "configs/multi_gpu_train.json",
    "configs/metadata.json", "configs/logging.conf", "docs/README.md", "LICENSE",
)  # fmt: skip


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


@pytest.mark.slow
@pytest.mark.parametrize("bundle", sorted(CASES))
def test_bundle_trains_on_fabricated_data(bundle, tmp_path):
    data = CASES[bundle](str(tmp_path / "data"))
    out = tmp_path / "out"
    run_bundle(
        os.path.join(BUNDLES, bundle, "configs", "train.json"),
        dataset_dir=data, output_dir=out, max_epochs=1, image_size=32, batch_size=4, num_workers=0,
        teacher="torchvision:resnet18", teacher_weights="random", progress_bar=False,
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
    assert datalist["training"] and datalist["validation"] and datalist["test"]
    # the selected checkpoint was scored on the test split, with bootstrap intervals, in the run's MLflow store
    from mlflow.tracking import MlflowClient

    with open(out / "report" / "test_metrics.json") as f:
        record = json.load(f)["metrics"]
    assert record["test_num_samples"] == len(datalist["test"])
    main = "test_mean_auc" if bundle == "rd_chestxray" else "test_accuracy"
    client = MlflowClient(f"sqlite:///{out}/mlruns.db")
    logged = client.search_runs([e.experiment_id for e in client.search_experiments()])[0].data.metrics
    if record[main] is not None:  # an AUC without positives and negatives in a tiny test split is undefined
        assert logged[f"{main}_ci_low"] <= logged[main] == record[main] <= logged[f"{main}_ci_high"]

    # the trained student is scored on the validation list and predicts a folder, through the bundle's own configs
    # (evaluate.json is an overlay on train.json; the image size etc. come from the training run)
    common = dict(output_dir=out, num_workers=0, env={"OMP_NUM_THREADS": "1"})
    configs = os.path.join(BUNDLES, bundle, "configs")
    run_bundle([os.path.join(configs, "train.json"), os.path.join(configs, "evaluate.json")],
               datalist_key="validation", **common)  # fmt: skip
    with open(out / "eval" / "validation" / "metrics.csv") as f:
        metrics = dict(line.strip().split(",", 1) for line in f if line.strip())
    assert metrics and all(0.0 <= float(v) <= 1.0 for v in metrics.values()), metrics
    folder = tmp_path / "to_predict"
    folder.mkdir()
    for item in datalist["validation"][:3]:
        os.symlink(item["image"], folder / os.path.basename(item["image"]))
    run_bundle(os.path.join(BUNDLES, bundle, "configs", "inference.json"), input_dir=folder, **common)
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(len(r) == n_out + 2 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("bundle", sorted(CASES) + ["rd_clinical"])
def test_metadata_verifies_offline(bundle):
    import sys

    from tests.conftest import REPO

    proc = run_python(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file",
         os.path.join(BUNDLES, bundle, "configs", "metadata.json"),
         "--filepath", os.path.join(REPO, "monai_rd", "schemas", "bundle_metadata_schema.json")],
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "metadata is verified with no error" in proc.stdout + proc.stderr

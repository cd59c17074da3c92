"""``monai-rd rank-teachers`` on fabricated BUSI data: the CSV, the plot and the MLflow run, read back."""

from __future__ import annotations

import csv

import pytest
import torch
import torchvision

from monai_rd.cli import main
from monai_rd.cli.rank_teachers import weights_by_teacher


def test_rank_teachers_writes_table_plot_and_mlflow(busi_dir, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    torch.manual_seed(0)
    weights = str(tmp_path / "mobilenet.pt")
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), weights)
    out = tmp_path / "rank"
    args = ["rank-teachers", "--bundle", "rd_busi", "--dataset_dir", busi_dir, "--teachers", "torchvision:resnet18",
            "torchvision:mobilenet_v3_small", "--teacher_weights", "torchvision:resnet18=random",
            f"torchvision:mobilenet_v3_small={weights}", "--image_size", "32", "--folds", "3", "--k", "3",
            "--n_resamples", "30", "--num_workers", "0", "--batch_size", "8", "--output_dir", str(out),
            "--no_progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "RANDOM (not a real teacher)" in printed and "LogME [CI]" in printed

    with open(out / "rank_teachers.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["rank"] for r in rows] == ["1", "2"]
    assert float(rows[0]["logme"]) >= float(rows[1]["logme"])  # sorted by LogME
    by_name = {r["teacher"]: r for r in rows}
    assert by_name["torchvision:resnet18"]["random_weights"] == "True"
    assert by_name["torchvision:mobilenet_v3_small"]["weights_source"] == "file"
    assert by_name["torchvision:resnet18"]["feature_dim"] == "512"
    for r in rows:
        for score in ("logme", "probe_accuracy", "knn_accuracy"):
            assert float(r[f"{score}_ci_low"]) <= float(r[score]) <= float(r[f"{score}_ci_high"])
        assert len(r["probe_fold_accuracies"].split()) == 3
    assert (out / "rank_teachers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    client = MlflowClient(tracking_uri="sqlite:///" + str(out / "mlruns.db"))
    experiment = client.get_experiment_by_name("rank_teachers")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.data.params["teachers"] == "torchvision:resnet18,torchvision:mobilenet_v3_small"
    logme = float(by_name["torchvision:resnet18"]["logme"])
    assert parent.data.metrics["torchvision_resnet18.logme"] == pytest.approx(logme)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"rank_teachers.csv", "rank_teachers.png"}
    assert {c.data.params["teacher"]: c.data.tags["random_weights"] for c in children} == {
        "torchvision:resnet18": "true",
        "torchvision:mobilenet_v3_small": "false",
    }
    assert all("knn_accuracy_ci_high" in c.data.metrics for c in children)

    # a second run reuses the cached features: no teacher is built
    assert main(args) == 0
    assert "Loading teacher" not in capsys.readouterr().out


def test_a_teacher_without_weights_is_refused_naming_the_flag(busi_dir, tmp_path):
    with pytest.raises(SystemExit, match="--teacher_weights torchvision:resnet18="):
        main(["rank-teachers", "--dataset_dir", busi_dir, "--teachers", "torchvision:resnet18", "--image_size", "32",
              "--output_dir", str(tmp_path)])  # fmt: skip


def test_weights_by_teacher():
    assert weights_by_teacher(["a", "b:c"], ["b:c=x.pt", "random"]) == {"a": "random", "b:c": "x.pt"}
    assert weights_by_teacher(["a"], []) == {"a": None}
    with pytest.raises(SystemExit, match="not in --teachers"):
        weights_by_teacher(["a"], ["z=x.pt"])
    with pytest.raises(SystemExit, match="two bare specs"):
        weights_by_teacher(["a"], ["x.pt", "y.pt"])

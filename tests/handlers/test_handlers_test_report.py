"""BestModelTestReport: the kept checkpoint scored on the test split, numbers checked independently, MLflow run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.metrics import f1_score, roc_auc_score

from monai_rd.handlers import BestModelTestReport


class _Linear(nn.Module):
    def __init__(self, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(4, out)

    def forward(self, x):
        return self.fc(x)


def _data(n=40, c=3, seed=0, multi_label=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 4)).astype(np.float32)
    if multi_label:
        y = (rng.random((n, c)) < 0.4).astype(np.float32)
        return [{"image": x[i], "label": y[i]} for i in range(n)]
    return [{"image": x[i], "label": int(rng.integers(0, c))} for i in range(n)]


def _run(tmp_path, data, c, multi_label, experiment="exp"):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    torch.manual_seed(0)
    model = _Linear(c)
    ckpt = str(tmp_path / "model.pt")
    best = _Linear(c)
    torch.save(best.state_dict(), ckpt)  # the "selected" checkpoint differs from the model passed in
    client = mlflow.MlflowClient(uri)
    # artifacts under tmp_path: the default artifact root is ./mlruns of the working directory (the repository)
    exp_id = client.create_experiment(experiment, artifact_location=(tmp_path / "mlartifacts").as_uri())
    run = client.create_run(exp_id, run_name="r1")
    report = BestModelTestReport(
        model, ckpt, data, transform=None, class_names=[f"c{k}" for k in range(c)], output_dir=str(tmp_path / "rep"),
        multi_label=multi_label, n_resamples=200, seed=3, batch_size=7, tags={"test_split": "official"},
        tracking_uri=uri, experiment_name=experiment, run_name="r1",
    )  # fmt: skip
    metrics = report()
    with torch.no_grad():
        logits = best(torch.as_tensor(np.stack([d["image"] for d in data])))
    return metrics, logits, client.get_run(run.info.run_id), report


def test_single_label_scores_match_an_independent_computation(tmp_path):
    data = _data()
    metrics, logits, run, report = _run(tmp_path, data, 3, False)
    probs = logits.softmax(1).numpy().astype(np.float64)
    y = np.array([d["label"] for d in data])
    assert metrics["test_accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
    assert metrics["test_f1_macro"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert metrics["test_auc_macro"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"), abs=1e-6)
    idx = np.random.default_rng(3).integers(0, len(y), size=(200, len(y)))
    ref = np.percentile([np.mean(probs[i].argmax(1) == y[i]) for i in idx], [2.5, 97.5])
    assert (metrics["test_accuracy_ci_low"], metrics["test_accuracy_ci_high"]) == pytest.approx(tuple(ref))
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert run.data.metrics["test_num_samples"] == 40
    assert run.data.tags["split_protocol"] == "holdout" and run.data.tags["test_split"] == "official"
    record = json.load(open(tmp_path / "rep" / "test_metrics.json"))
    assert record["split"] == "test" and record["n_resamples"] == 200 and record["metrics"] == pytest.approx(metrics)


def test_multi_label_per_finding_aucs(tmp_path):
    data = _data(multi_label=True, c=3)
    metrics, logits, run, _ = _run(tmp_path, data, 3, True)
    scores = logits.sigmoid().numpy()
    y = np.stack([d["label"] for d in data])
    aucs = [roc_auc_score(y[:, k], scores[:, k]) for k in range(3)]
    for k in range(3):
        assert metrics[f"test_auc_c{k}"] == pytest.approx(aucs[k], abs=1e-6)
        assert run.data.metrics[f"test_auc_c{k}_ci_high"] >= run.data.metrics[f"test_auc_c{k}"]
    assert metrics["test_mean_auc"] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert "test_accuracy" not in metrics


def test_empty_test_split_fails_at_construction(tmp_path):
    with pytest.raises(ValueError, match="'test' split is empty"):
        BestModelTestReport(_Linear(2), str(tmp_path / "m.pt"), [], None, ["a", "b"], str(tmp_path))


def test_missing_checkpoint_is_named(tmp_path):
    report = BestModelTestReport(
        _Linear(2), str(tmp_path / "m.pt"), _data(c=2), None, ["a", "b"], str(tmp_path), experiment_name=None
    )
    with pytest.raises(FileNotFoundError, match=os.path.join(str(tmp_path), "m.pt")):
        report()

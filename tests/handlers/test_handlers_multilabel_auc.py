"""MultiLabelAUC against scikit-learn's roc_auc_score, and attached to an Ignite engine."""

import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from sklearn.metrics import roc_auc_score

from monai_rd.handlers import MultiLabelAUC, multilabel_auc


def _data(seed=0, n=40, c=4):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.4).astype(np.float64)
    scores = np.clip(y * 0.3 + rng.random((n, c)) * 0.8, 0, 1)
    return scores, y


def test_per_label_auc_matches_sklearn():
    scores, y = _data()
    got = multilabel_auc(torch.tensor(scores), torch.tensor(y))
    expected = [roc_auc_score(y[:, c], scores[:, c]) for c in range(y.shape[1])]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_undefined_label_is_nan_and_left_out_of_mean():
    scores, y = _data(1)
    y[:, 2] = 0  # no positive for label 2
    got = multilabel_auc(torch.tensor(scores), torch.tensor(y))
    assert math.isnan(got[2])
    metric = MultiLabelAUC(class_names=list("abcd"), output_transform=lambda o: o)
    metric.reset()
    metric.update((torch.tensor(scores[:20]), torch.tensor(y[:20])))
    metric.update((torch.tensor(scores[20:]), torch.tensor(y[20:])))
    with pytest.warns(UserWarning, match=r"\['c'\]"):
        mean = metric.compute()
    expected = np.mean([roc_auc_score(y[:, c], scores[:, c]) for c in (0, 1, 3)])
    assert mean == pytest.approx(expected)


def test_attached_to_engine_writes_per_label_and_mean_metrics():
    scores, y = _data(2)
    batches = [
        [{"pred": torch.tensor(s), "label": torch.tensor(t)} for s, t in zip(scores[i : i + 8], y[i : i + 8])]
        for i in range(0, 40, 8)
    ]  # decollated like MONAI engine outputs
    engine = Engine(lambda e, b: b)
    MultiLabelAUC(class_names=["w", "x", "y", "z"], average="none").attach(engine, "val_auc")
    MultiLabelAUC().attach(engine, "val_mean_auc")
    state = engine.run(batches, max_epochs=1)
    expected = [roc_auc_score(y[:, c], scores[:, c]) for c in range(4)]
    for name, value in zip("wxyz", expected):
        assert state.metrics[f"val_auc_{name}"] == pytest.approx(value)
    assert "val_auc" not in state.metrics
    assert state.metrics["val_mean_auc"] == pytest.approx(np.mean(expected))


def test_bad_arguments():
    with pytest.raises(ValueError, match="class_names"):
        MultiLabelAUC(average="none")
    with pytest.raises(ValueError, match="one shape"):
        multilabel_auc(torch.zeros(4, 3), torch.zeros(4, 2))

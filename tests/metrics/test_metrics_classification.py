"""Per-class report, ROC curves and plots, checked against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from monai_rd.metrics import auc, classification_report, confusion_matrix, report_to_csv, report_to_markdown, roc_curve
from monai_rd.visualize import plot_confusion_matrix, plot_roc_curves, plot_training_curves

NAMES = ["benign", "malignant", "normal"]


def _data(seed, n=60, ties=True):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([1, 1, 1], n)
    if ties:
        probs[: n // 4] = [0.2, 0.3, 0.5]  # tied scores exercise the threshold grouping
    labels = rng.integers(0, 3, n)
    return probs, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_sklearn(seed):
    probs, labels = _data(seed)
    preds = probs.argmax(1)
    r = classification_report(probs, labels, NAMES)
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(labels, preds), abs=1e-12)
    np.testing.assert_array_equal(r["confusion_matrix"], skm.confusion_matrix(labels, preds, labels=[0, 1, 2]))
    p, rc, f1, s = skm.precision_recall_fscore_support(labels, preds, labels=[0, 1, 2], zero_division=0)
    for k, row in enumerate(r["classes"]):
        assert row["class"] == NAMES[k]
        assert row["precision"] == pytest.approx(p[k], abs=1e-12)
        assert row["recall"] == pytest.approx(rc[k], abs=1e-12)
        assert row["f1"] == pytest.approx(f1[k], abs=1e-12)
        assert row["support"] == s[k]
        assert row["auc"] == pytest.approx(skm.roc_auc_score(labels == k, probs[:, k]), abs=1e-12)
    assert r["macro"]["auc"] == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"), abs=1e-12
    )
    assert r["weighted"]["auc"] == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", average="weighted"), abs=1e-12
    )
    assert r["macro"]["f1"] == pytest.approx(skm.f1_score(labels, preds, average="macro", zero_division=0), abs=1e-12)
    assert r["weighted"]["f1"] == pytest.approx(
        skm.f1_score(labels, preds, average="weighted", zero_division=0), abs=1e-12
    )


def test_roc_points_match_sklearn():
    probs, labels = _data(3)
    for k in range(3):
        fpr, tpr, thr = roc_curve(labels == k, probs[:, k])
        f2, t2, th2 = skm.roc_curve(labels == k, probs[:, k], drop_intermediate=False)
        np.testing.assert_allclose(fpr, f2)
        np.testing.assert_allclose(tpr, t2)
        np.testing.assert_allclose(thr[1:], th2[1:])
        assert auc(fpr, tpr) == pytest.approx(skm.auc(f2, t2))


def test_absent_class_gives_nan_auc_and_zero_recall():
    probs, labels = _data(4, ties=False)
    labels = np.where(labels == 2, 0, labels)  # no "normal" sample
    r = classification_report(probs, labels, NAMES)
    assert math.isnan(r["classes"][2]["auc"]) and r["classes"][2]["recall"] == 0 and r["classes"][2]["support"] == 0
    assert r["macro"]["auc"] == pytest.approx(np.mean([skm.roc_auc_score(labels == k, probs[:, k]) for k in (0, 1)]))
    assert "n/a" in report_to_markdown(r)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="labels"):
        classification_report(np.ones((2, 3)) / 3, [0, 3], NAMES)
    with pytest.raises(ValueError, match="classes"):
        classification_report(np.ones((2, 2)) / 2, [0, 1], NAMES)
    with pytest.raises(ValueError, match="empty"):
        classification_report(np.ones((0, 3)), [], NAMES)
    np.testing.assert_array_equal(confusion_matrix([0, 1, 1], [1, 1, 0], 2), [[0, 1], [1, 1]])


def test_csv_markdown_and_pngs(tmp_path):
    import csv

    from matplotlib.image import imread

    probs, labels = _data(5)
    r = classification_report(probs, labels, NAMES)
    rows = list(csv.DictReader(report_to_csv(r).splitlines()))
    assert [row["class"] for row in rows] == NAMES + ["macro avg", "weighted avg"]
    assert float(rows[1]["f1"]) == pytest.approx(r["classes"][1]["f1"], abs=1e-15)
    md = report_to_markdown(r)
    assert "| malignant |" in md and "Confusion matrix" in md
    files = [
        plot_confusion_matrix(r["confusion_matrix"], NAMES, tmp_path / "cm.png"),
        plot_roc_curves(r["roc"], {c["class"]: c["auc"] for c in r["classes"]}, tmp_path / "roc.png"),
        plot_training_curves(
            {"loss": [(1, 2.0), (2, 1.0)], "weight_kd": [(1, 1.0), (2, 0.5)]},
            {"val_accuracy": [(1, 0.3), (2, 0.6)]},
            tmp_path / "curves.png",
        ),
    ]
    for f in files:
        image = imread(f)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # something was drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "curves.png", "roc.png"]  # no temp files left


def test_roc_auc_matches_sklearn_with_ties_and_is_nan_for_one_class():
    from sklearn.metrics import roc_auc_score

    from monai_rd.metrics import roc_auc

    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.3
    scores = np.round(rng.random(200) + 0.2 * y, 1)  # rounded: many ties, which count half
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert math.isnan(roc_auc(np.ones(5, bool), rng.random(5)))


def test_one_hot_mean_auc_handler_matches_sklearn_ovr_macro():
    """The bundles' validation AUC (MultiLabelAUC on softmax + one-hot labels) is scikit-learn's OvR macro AUC."""
    import torch
    from sklearn.metrics import roc_auc_score

    from monai_rd.handlers import MultiLabelAUC

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 60)
    logits = rng.normal(size=(60, 3)) + np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metric = MultiLabelAUC(output_transform=lambda o: o)
    metric.reset()
    for part in np.array_split(np.arange(60), 4):
        metric.update((torch.tensor(probs[part]), torch.tensor(np.eye(3)[labels[part]])))
    expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert metric.compute() == pytest.approx(expected, abs=1e-12)

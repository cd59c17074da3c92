"""Bootstrap confidence intervals against an independent NumPy float64 / scikit-learn computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from monai_rd.metrics import accuracy, bootstrap_ci, macro_auc, macro_f1, split_metrics


def _data(n=120, c=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(0, 1, (n, c)) + 1.5 * np.eye(c)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


def _reference(probs, labels, n_resamples, seed, confidence=0.95):
    """The percentile bootstrap written out independently: same index draw, scikit-learn metrics."""
    idx = np.random.default_rng(seed).integers(0, len(labels), size=(n_resamples, len(labels)))
    c = probs.shape[1]
    acc, f1, aucs = [], [], []
    for i in idx:
        p, y = probs[i], labels[i]
        acc.append(np.mean(p.argmax(1) == y))
        f1.append(f1_score(y, p.argmax(1), average="macro", zero_division=0))
        per = [roc_auc_score(y == k, p[:, k]) for k in range(c) if 0 < (y == k).sum() < len(y)]
        aucs.append(np.mean(per) if per else np.nan)
    q = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]
    return {
        name: np.percentile(np.asarray(v, dtype=np.float64)[~np.isnan(v)], q)
        for name, v in (("accuracy", acc), ("f1_macro", f1), ("auc_macro", aucs))
    }


def test_point_metrics_match_sklearn():
    probs, labels = _data()
    assert accuracy(probs, labels) == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert macro_f1(probs, labels) == pytest.approx(f1_score(labels, probs.argmax(1), average="macro"))
    assert macro_auc(probs, labels) == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def test_split_metrics_intervals_match_independent_bootstrap():
    probs, labels = _data(n=60)
    got = split_metrics(probs, labels, ["a", "b", "c"], n_resamples=200, seed=7)
    ref = _reference(probs, labels, 200, 7)
    for name, (low, high) in ref.items():
        assert got[f"test_{name}_ci_low"] == pytest.approx(low, abs=1e-12)
        assert got[f"test_{name}_ci_high"] == pytest.approx(high, abs=1e-12)
        assert got[f"test_{name}_ci_low"] <= got[f"test_{name}"] <= got[f"test_{name}_ci_high"]
    assert got["test_num_samples"] == 60
    # seeded: the same seed gives the same interval, another seed another one
    assert split_metrics(probs, labels, ["a", "b", "c"], n_resamples=200, seed=7) == got
    assert split_metrics(probs, labels, ["a", "b", "c"], n_resamples=200, seed=8) != got


def test_accuracy_interval_has_the_normal_approximation_width():
    rng = np.random.default_rng(1)
    n = 2000
    labels = rng.integers(0, 2, n)
    correct = rng.random(n) < 0.8
    preds = np.where(correct, labels, 1 - labels)
    probs = np.eye(2)[preds]
    r = bootstrap_ci(accuracy, (probs, labels), n_resamples=2000, seed=0)
    p = r["value"]
    half = 1.959964 * math.sqrt(p * (1 - p) / n)
    assert r["ci_low"] == pytest.approx(p - half, abs=0.004) and r["ci_high"] == pytest.approx(p + half, abs=0.004)


def test_multilabel_per_finding_auc_intervals():
    rng = np.random.default_rng(2)
    y = (rng.random((80, 3)) < [0.3, 0.5, 0.0]).astype(int)  # the third finding never occurs
    scores = np.clip(y * 0.4 + rng.random((80, 3)) * 0.8, 0, 1)
    got = split_metrics(scores, y, ["A", "B", "C"], multi_label=True, n_resamples=100, seed=3)
    for k, name in enumerate("AB"):
        assert got[f"test_auc_{name}"] == pytest.approx(roc_auc_score(y[:, k], scores[:, k]))
        idx = np.random.default_rng(3).integers(0, 80, size=(100, 80))
        ref = [roc_auc_score(y[i, k], scores[i, k]) for i in idx if 0 < y[i, k].sum() < 80]
        assert got[f"test_auc_{name}_ci_low"] == pytest.approx(np.percentile(ref, 2.5), abs=1e-12)
    assert math.isnan(got["test_auc_C"]) and math.isnan(got["test_auc_C_ci_low"])
    assert got["test_mean_auc"] == pytest.approx((got["test_auc_A"] + got["test_auc_B"]) / 2)


def test_bad_arguments():
    probs, labels = _data(n=10)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(accuracy, (probs, labels), confidence=95)
    with pytest.raises(ValueError, match="one length"):
        bootstrap_ci(accuracy, (probs, labels[:5]))
    with pytest.raises(ValueError, match=r"probs must be \[N, 2\]"):
        split_metrics(probs, labels, ["a", "b"])

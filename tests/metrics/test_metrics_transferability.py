"""Transferability scores: LogME against the closed-form evidence maximised by SciPy, probe and k-NN sanity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from monai_rd.metrics.transferability import (
    knn_accuracy,
    knn_predict,
    linear_probe_accuracy,
    logme,
    transferability_scores,
)


def reference_logme(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean over one-vs-rest classes of max over (alpha, beta) of log N(y; 0, F F^T / alpha + I / beta) / N."""
    f = np.asarray(features, dtype=np.float64)
    n = f.shape[0]
    gram = f @ f.T
    out = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)

        def negative(log_ab, y=y):
            alpha, beta = np.exp(log_ab)
            cov = gram / alpha + np.eye(n) / beta
            return -multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(y)

        best = min(
            (minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
             for start in ([0.0, 0.0], [2.0, -1.0], [-2.0, 2.0])),
            key=lambda r: r.fun,
        )  # fmt: skip
        out.append(-best.fun / n)
    return float(np.mean(out))


@pytest.mark.parametrize("n, d", [(24, 5), (12, 20)])  # N > D and N < D (SVD with a null space)
def test_logme_matches_the_closed_form_evidence_maximised_by_scipy(n, d):
    rng = np.random.default_rng(n + d)
    labels = np.arange(n) % 3
    features = rng.normal(size=(n, d)) + 0.8 * np.eye(3)[labels] @ rng.normal(size=(3, d))
    assert logme(features, labels) == pytest.approx(reference_logme(features, labels), abs=1e-4)


def test_logme_multi_hot_equals_mean_of_its_columns():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(20, 4))
    multi_hot = (rng.random((20, 3)) > 0.5).astype(int)
    per_column = [logme(features, np.stack([1 - multi_hot[:, c], multi_hot[:, c]], 1)[:, 1:]) for c in range(3)]
    assert logme(features, multi_hot) == pytest.approx(np.mean(per_column), rel=1e-12)


def separated(seed=0, n_per_class=30, d=16, gap=3.0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    centres = gap * rng.normal(size=(3, d))
    return centres[labels] + rng.normal(size=(labels.size, d)), labels


def test_separated_features_score_higher_than_shuffled_labels():
    features, labels = separated()
    shuffled = np.random.default_rng(5).permutation(labels)
    assert logme(features, labels) > logme(features, shuffled) + 0.1
    assert linear_probe_accuracy(features, labels, folds=5, seed=0).mean() > 0.9
    assert linear_probe_accuracy(features, shuffled, folds=5, seed=0).mean() < 0.7
    assert knn_accuracy(features, labels, k=5, folds=5, seed=0).mean() > 0.9
    assert knn_accuracy(features, shuffled, k=5, folds=5, seed=0).mean() < 0.7


def test_cross_validation_returns_one_accuracy_per_fold_and_is_seeded():
    features, labels = separated(gap=0.5)
    a = linear_probe_accuracy(features, labels, folds=4, seed=3)
    assert a.shape == (4,) and np.all((0 <= a) & (a <= 1))
    np.testing.assert_array_equal(a, linear_probe_accuracy(features, labels, folds=4, seed=3))
    assert knn_accuracy(features[:8], labels[:8] * 0 + np.arange(8) % 2, folds=5).shape == (4,)  # 4 per class


def test_knn_is_cosine():
    train = np.array([[1.0, 0.0], [10.0, 0.5], [0.0, 1.0], [0.2, 9.0]])
    labels = np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(knn_predict(train, labels, np.array([[100.0, 1.0], [0.01, 0.5]]), k=1), [0, 1])


def test_scores_carry_bootstrap_intervals():
    features, labels = separated(n_per_class=12, gap=1.0)
    scores = transferability_scores(features, labels, folds=3, k=3, seed=0, n_resamples=50)
    for name in ("logme", "linear_probe", "knn"):
        s = scores[name]
        assert s["ci_low"] <= s["value"] <= s["ci_high"] and math.isfinite(s["value"])
    assert len(scores["knn"]["per_fold"]) == 3
    multi = transferability_scores(features, np.eye(3, dtype=int)[labels], n_resamples=10)
    assert math.isfinite(multi["logme"]["value"]) and math.isnan(multi["knn"]["value"])


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="pool feature maps"):
        logme(np.zeros((4, 2, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2 per class"):
        knn_accuracy(np.random.rand(5, 3), np.array([0, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        logme(np.full((4, 2), np.nan), np.array([0, 1, 0, 1]))

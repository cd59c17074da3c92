"""Percentile-bootstrap confidence intervals of test-set metrics (accuracy, macro-F1, macro/per-finding AUC).

The test set is resampled with replacement ``n_resamples`` times (indices drawn by ``numpy.random.default_rng(seed)
.integers(0, N, size=(n_resamples, N))``, so an interval is reproducible from its seed); the interval is the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles (NumPy's linear interpolation) of the metric over
the resamples. Resamples on which a metric is undefined (an AUC without positives or negatives) are left out of
its percentiles and counted. Plain NumPy float64, like :mod:`monai_rd.metrics.classification`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from monai_rd.metrics.classification import auc, confusion_matrix, roc_curve

__all__ = ["accuracy", "macro_f1", "one_vs_rest_aucs", "mean_auc", "macro_auc", "bootstrap_ci", "split_metrics"]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``[N]`` class indices ``labels`` equal to the arg-max of ``[N, C]`` ``probs``."""
    return float(np.mean(np.asarray(probs).argmax(axis=1) == np.asarray(labels)))


def macro_f1(probs: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in ``labels`` or in the predictions (scikit-learn's default)."""
    probs, labels = np.asarray(probs), np.asarray(labels, dtype=np.int64)
    preds = probs.argmax(axis=1)
    cm = confusion_matrix(labels, preds, probs.shape[1]).astype(np.float64)
    tp, predicted, support = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    present = (predicted + support) > 0
    f1 = np.divide(2 * tp, predicted + support, out=np.zeros_like(tp), where=present)
    return float(f1[present].mean())


def one_vs_rest_aucs(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """ROC AUC of each column: ``scores`` ``[N, C]`` against boolean ``positives`` ``[N, C]``; NaN where undefined."""
    scores, positives = np.asarray(scores, dtype=np.float64), np.asarray(positives).astype(bool)
    out = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        if positives[:, c].any() and not positives[:, c].all():
            out[c] = auc(*roc_curve(positives[:, c], scores[:, c])[:2])
    return out


def macro_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes that have one (``labels``: ``[N]`` class indices)."""
    probs = np.asarray(probs)
    return mean_auc(probs, np.eye(probs.shape[1], dtype=bool)[np.asarray(labels, dtype=np.int64)])


def mean_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Mean of :func:`one_vs_rest_aucs` over the columns that have one (multi-label), NaN if none has."""
    aucs = one_vs_rest_aucs(scores, positives)
    return float(np.nanmean(aucs)) if not np.isnan(aucs).all() else math.nan


def bootstrap_ci(
    statistic: Callable[..., float | np.ndarray],
    arrays: Sequence[np.ndarray],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    return_samples: bool = False,
) -> dict:
    """The statistic on ``arrays`` (all of length ``N`` along axis 0) and its percentile-bootstrap interval.

    Returns:
        ``{"value", "ci_low", "ci_high", "n_valid"}``: floats for a scalar statistic, arrays of its length for a
        vector one (e.g. per-finding AUCs); ``n_valid`` counts the resamples where it was defined (not NaN).
        With ``return_samples`` also ``"samples"``: the statistic on every resample, ``[n_resamples, *shape]``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")
    arrays = [np.asarray(a) for a in arrays]
    n = arrays[0].shape[0]
    if n == 0 or any(a.shape[0] != n for a in arrays):
        raise ValueError(f"bootstrap_ci needs non-empty arrays of one length; got {[a.shape for a in arrays]}.")
    value = np.asarray(statistic(*arrays), dtype=np.float64)
    index = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    samples = np.stack([np.asarray(statistic(*(a[i] for a in arrays)), dtype=np.float64) for i in index])
    valid = ~np.isnan(samples)
    q = 100 * np.array([(1 - confidence) / 2, (1 + confidence) / 2])
    low, high = np.full(value.shape, np.nan), np.full(value.shape, np.nan)
    for k in np.ndindex(value.shape):
        column = samples[(slice(None), *k)]
        ok = column[~np.isnan(column)]
        if ok.size:
            low[k], high[k] = np.percentile(ok, q)
    out = {"value": value, "ci_low": low, "ci_high": high, "n_valid": valid.sum(axis=0)}
    if value.ndim == 0:
        out = {k: (int(v) if k == "n_valid" else float(v)) for k, v in out.items()}
    if return_samples:
        out["samples"] = samples
    return out


def split_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    multi_label: bool = False,
    prefix: str = "test",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Flat ``{name: value}`` metrics of one split with their intervals: ``<prefix>_<metric>[_ci_low|_ci_high]``.

    Single-label (``probs`` ``[N, C]``, ``labels`` ``[N]`` class indices): ``accuracy``, ``f1_macro``, ``auc_macro``.
    Multi-label (``probs`` ``[N, C]`` sigmoid scores, ``labels`` ``[N, C]`` multi-hot): ``mean_auc`` and
    ``auc_<class>`` per finding. Also ``<prefix>_num_samples``. The names match the bundles' ``val_*`` metrics.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[1] != len(class_names):
        raise ValueError(f"probs must be [N, {len(class_names)}], got {probs.shape}.")
    if multi_label and labels.shape != probs.shape:
        raise ValueError(f"multi-label labels must be [N, C] like probs {probs.shape}, got {labels.shape}.")
    kw = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
    out = {f"{prefix}_num_samples": float(probs.shape[0])}

    def put(name: str, r: dict) -> None:
        out.update(
            {
                f"{prefix}_{name}": r["value"],
                f"{prefix}_{name}_ci_low": r["ci_low"],
                f"{prefix}_{name}_ci_high": r["ci_high"],
            }
        )

    if multi_label:
        per = bootstrap_ci(one_vs_rest_aucs, (probs, labels), **kw)
        for k, name in enumerate(class_names):
            put(f"auc_{name}", {key: float(per[key][k]) for key in ("value", "ci_low", "ci_high")})
        put("mean_auc", bootstrap_ci(mean_auc, (probs, labels), **kw))
        return out
    put("accuracy", bootstrap_ci(accuracy, (probs, labels), **kw))
    put("f1_macro", bootstrap_ci(macro_f1, (probs, labels), **kw))
    put("auc_macro", bootstrap_ci(macro_auc, (probs, labels), **kw))
    return out

"""Per-class classification report of a multi-class classifier: confusion matrix, ROC curves, P/R/F1/AUC.

The one ROC-AUC of the package: :func:`roc_auc` (one score column against one binary column), used by the
report, by :func:`per_label_auc` and through it by the ``MultiLabelAUC`` handler the bundles score with.

Plain NumPy (float64) implementations, so the numbers written to reports and MLflow do not depend on the
plotting or logging stack; the tests check them against scikit-learn.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "confusion_matrix", "roc_curve", "auc", "roc_auc", "per_label_auc", "classification_report", "report_to_csv",
    "report_to_markdown",
]  # fmt: skip


def _check(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probs.ndim != 2:
        raise ValueError(f"probs must be [N, C] class scores; got shape {probs.shape}.")
    if labels.shape[0] != probs.shape[0]:
        raise ValueError(f"{probs.shape[0]} predictions but {labels.shape[0]} labels.")
    if probs.shape[0] == 0:
        raise ValueError("No predictions: the validation set is empty.")
    c = num_classes if num_classes is not None else probs.shape[1]
    if probs.shape[1] != c:
        raise ValueError(f"probs has {probs.shape[1]} classes, expected {c}.")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise ValueError("labels must be class indices (integers).")
        labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= c:
        raise ValueError(f"labels must lie in [0, {c - 1}]; got [{labels.min()}, {labels.max()}].")
    return probs, labels


def confusion_matrix(
    labels: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """``[C, C]`` counts, row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    preds = np.asarray(preds, dtype=np.int64).reshape(-1)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def roc_curve(is_positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-vs-rest ROC curve: ``(fpr, tpr, thresholds)``, one point per distinct score plus ``(0, 0)``.

    ``thresholds[0]`` is ``+inf``; the point ``i`` counts as positive every score ``>= thresholds[i]``.
    ``fpr``/``tpr`` are NaN when the set has no negatives/positives.
    """
    y = np.asarray(is_positive, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1 - tps).astype(np.float64)
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    p, n = tps[-1], fps[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tps / p if p > 0 else np.full_like(tps, np.nan)
        fpr = fps / n if n > 0 else np.full_like(fps, np.nan)
    return fpr, tpr, np.r_[np.inf, s[last_of_tie]]


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the piecewise-linear curve through ``(x, y)`` (trapezoids); NaN if any value is NaN."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.isnan(x).any() or np.isnan(y).any():
        return math.nan
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the one-vs-rest ROC curve of ``scores`` ``[N]`` for the binary ``is_positive`` ``[N]``
    (ties count half, as in scikit-learn's ``roc_auc_score``); NaN when the set has no positive or no negative."""
    fpr, tpr, _ = roc_curve(is_positive, scores)
    return auc(fpr, tpr)


def per_label_auc(scores: np.ndarray, targets: np.ndarray) -> list[float]:
    """:func:`roc_auc` of each column: ``scores`` ``[N, C]``, ``targets`` ``[N, C]`` multi-hot (or one-hot) in
    ``{0, 1}``; NaN for a column holding only positives or only negatives."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"per-label AUC needs scores and labels of one shape [N, C], got {scores.shape} and {targets.shape}."
        )
    if not np.isin(targets, (0.0, 1.0)).all():
        raise ValueError("per-label AUC needs {0, 1} labels (multi-hot or one-hot).")
    return [roc_auc(targets[:, c] == 1, scores[:, c]) for c in range(scores.shape[1])]


def classification_report(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict:
    """Everything the best-model report needs, from class probabilities and true class indices.

    Args:
        probs: ``[N, C]`` class probabilities (or any scores; the arg-max is the prediction).
        labels: ``[N]`` true class indices.
        class_names: ``C`` names in label order.

    Returns:
        ``{"num_samples", "accuracy", "confusion_matrix" ([C][C] lists), "classes": [{"class", "precision",
        "recall", "f1", "support", "auc"}], "macro": {...}, "weighted": {...}, "roc": {class: {"fpr", "tpr"}}}``.
        Precision (recall) of a class never predicted (absent) is 0; its AUC is NaN when the set has no
        positives or no negatives of it, and macro averages skip NaN AUCs.
    """
    c = len(class_names)
    probs, labels = _check(probs, labels, c)
    preds = probs.argmax(axis=1)
    cm = confusion_matrix(labels, preds, c)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0).astype(np.float64), cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros(c), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(c), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(c), where=denom > 0)
    roc, aucs = {}, []
    for k, name in enumerate(class_names):
        fpr, tpr, _ = roc_curve(labels == k, probs[:, k])
        roc[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        aucs.append(auc(fpr, tpr))  # = roc_auc(labels == k, probs[:, k]), the curve being needed too
    aucs_arr = np.asarray(aucs)
    weights = support / support.sum()

    def _nanmean(v: np.ndarray, w: np.ndarray | None = None) -> float:
        ok = ~np.isnan(v)
        if not ok.any():
            return math.nan
        return float(np.average(v[ok], weights=None if w is None else w[ok]))

    classes = [
        {
            "class": name,
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
            "auc": float(aucs_arr[k]),
        }
        for k, name in enumerate(class_names)
    ]
    return {
        "num_samples": int(labels.size),
        "accuracy": float(tp.sum() / labels.size),
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
        "classes": classes,
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
            "auc": _nanmean(aucs_arr),
        },
        "weighted": {
            "precision": float(precision @ weights),
            "recall": float(recall @ weights),
            "f1": float(f1 @ weights),
            "auc": _nanmean(aucs_arr, weights),
        },
        "roc": roc,
    }


def _fmt(v: float) -> str:
    return "n/a" if isinstance(v, float) and math.isnan(v) else f"{v:.4f}"


def report_to_csv(report: dict) -> str:
    """The per-class table (plus macro/weighted rows) as CSV text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["class", "precision", "recall", "f1", "support", "auc"])
    for row in report["classes"]:
        writer.writerow(
            [row["class"], *(repr(row[k]) for k in ("precision", "recall", "f1")), row["support"], repr(row["auc"])]
        )
    total = sum(r["support"] for r in report["classes"])
    for avg in ("macro", "weighted"):
        m = report[avg]
        writer.writerow([f"{avg} avg", repr(m["precision"]), repr(m["recall"]), repr(m["f1"]), total, repr(m["auc"])])
    return buffer.getvalue()


def report_to_markdown(report: dict, title: str = "Classification report") -> str:
    """A human-readable Markdown version: accuracy, the per-class table and the confusion matrix."""
    names = report["class_names"]
    lines = [
        f"# {title}",
        "",
        f"Samples: {report['num_samples']}  ",
        f"Accuracy: {_fmt(report['accuracy'])}",
        "",
        "| class | precision | recall | F1 | support | AUC (one-vs-rest) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["classes"]:
        lines.append(
            f"| {r['class']} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | {_fmt(r['f1'])} | "
            f"{r['support']} | {_fmt(r['auc'])} |"
        )
    total = sum(r["support"] for r in report["classes"])
    for avg in ("macro", "weighted"):
        m = report[avg]
        lines.append(
            f"| **{avg} avg** | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} | {total} | "
            f"{_fmt(m['auc'])} |"
        )
    lines += [
        "",
        "Confusion matrix (rows: true class, columns: predicted class):",
        "",
        "| true \\ predicted | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for name, row in zip(names, report["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "AUC is n/a for a class with no positive or no negative sample in the set.", ""]
    return "\n".join(lines)

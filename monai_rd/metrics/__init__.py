"""Metrics of a trained classifier (per-class report, confusion matrix, ROC curve and AUC, bootstrap intervals) and
of a teacher's features before training (transferability: LogME, linear probe, k-NN)."""

from monai_rd.metrics.bootstrap import (
    accuracy,
    bootstrap_ci,
    macro_auc,
    macro_f1,
    mean_auc,
    one_vs_rest_aucs,
    split_metrics,
)
from monai_rd.metrics.classification import (
    auc,
    per_label_auc,
    roc_auc,
    classification_report,
    confusion_matrix,
    report_to_csv,
    report_to_markdown,
    roc_curve,
)
from monai_rd.metrics.transferability import (
    knn_accuracy,
    linear_probe_accuracy,
    logme,
    transferability_scores,
)

"""Metrics of a trained classifier: per-class report, confusion matrix, ROC curve and AUC."""

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

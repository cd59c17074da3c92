"""Reports on a trained classifier: per-class metrics, confusion matrix, ROC and training-curve figures."""

from .classification import auc, classification_report, confusion_matrix, report_to_csv, report_to_markdown, roc_curve
from .plots import plot_confusion_matrix, plot_roc_curves, plot_training_curves

"""Figures of a trained classifier: confusion matrix, ROC curves and training curves."""

from monai_rd.visualize.plots import plot_confusion_matrix, plot_roc_curves, plot_training_curves

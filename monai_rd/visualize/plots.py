"""PNG figures of a classification report and of a training history (matplotlib, Agg canvas, no display).

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas directly, so nothing here touches
pyplot's global state or needs a display; files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from monai_rd.utils import atomic_path

__all__ = ["plot_confusion_matrix", "plot_roc_curves", "plot_training_curves"]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> str:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return os.fspath(path)


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "Confusion matrix",
) -> str:
    """Confusion matrix ``[C, C]`` (rows true, columns predicted) with counts in each cell, as a PNG."""
    import numpy as np

    cm = np.asarray(matrix)
    c = len(class_names)
    fig = _figure(1.6 + 1.1 * c, 1.2 + 1.0 * c)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(c), labels=list(class_names), rotation=30, ha="right")
    ax.set_yticks(range(c), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(c):
        for j in range(c):
            ax.text(
                j, i, str(int(cm[i, j])), ha="center", va="center", color="white" if cm[i, j] > threshold else "black"
            )
    fig.tight_layout()
    return _save(fig, path)


def plot_roc_curves(
    roc: Mapping[str, Mapping[str, Sequence[float]]],
    aucs: Mapping[str, float],
    path: str | os.PathLike,
    title: str = "ROC curves (one-vs-rest)",
) -> str:
    """One ROC curve per class (``roc[class] = {"fpr", "tpr"}``), AUC in the legend, as a PNG."""
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    for name, curve in roc.items():
        a = aucs.get(name, float("nan"))
        label = f"{name} (AUC {a:.3f})" if a == a else f"{name} (AUC n/a)"
        ax.plot(curve["fpr"], curve["tpr"], drawstyle="default", label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(
    iteration_history: Mapping[str, Sequence[tuple[int, float]]],
    epoch_history: Mapping[str, Sequence[tuple[int, float]]],
    path: str | os.PathLike,
    title: str = "Training curves",
) -> str:
    """Three panels: loss terms per iteration, loss weights per iteration, validation metrics per epoch.

    Args:
        iteration_history: ``{name: [(iteration, value), ...]}``; names starting with ``weight_`` go to the
            weights panel, the others (``loss``, ``loss_<term>``, ``cka``) to the loss panel.
        epoch_history: ``{metric: [(epoch, value), ...]}``.
    """
    fig = _figure(15.0, 4.5)
    axes = fig.subplots(1, 3)
    panels = (
        (
            axes[0],
            {k: v for k, v in iteration_history.items() if not k.startswith("weight_")},
            "iteration",
            "loss terms",
        ),
        (axes[1], {k: v for k, v in iteration_history.items() if k.startswith("weight_")}, "iteration", "loss weights"),
        (axes[2], epoch_history, "epoch", "validation metrics"),
    )
    for ax, series, xlabel, name in panels:
        for key, points in sorted(series.items()):
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o" if xlabel == "epoch" else None, markersize=3, label=key)
        ax.set_xlabel(xlabel)
        ax.set_title(name)
        if series:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "nothing recorded", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)

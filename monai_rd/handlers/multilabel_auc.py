"""Per-label and mean ROC AUC over an epoch, as an Ignite metric: multi-hot labels (ChestX-ray14) or one-hot
single-label outputs (one-vs-rest). The AUC itself is :func:`monai_rd.metrics.roc_auc`, the package's only one."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.metrics import per_label_auc

Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric", as_type="base")

__all__ = ["MultiLabelAUC", "multilabel_auc"]


def _stack(x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack([torch.as_tensor(i) for i in x]) if isinstance(x, (list, tuple)) else torch.as_tensor(x)


def multilabel_auc(y_pred: torch.Tensor, y: torch.Tensor) -> list[float]:
    """ROC AUC of each of the ``C`` labels: ``y_pred`` scores ``[N, C]``, ``y`` multi-hot ``{0, 1}`` ``[N, C]``.

    Each column is scored by :func:`monai_rd.metrics.roc_auc` (float64); a label whose column holds only
    positives or only negatives has no AUC and gets ``nan``.
    """
    y_pred = torch.as_tensor(y_pred).detach().double().cpu().numpy()
    return per_label_auc(y_pred, torch.as_tensor(y).detach().double().cpu().numpy())


class MultiLabelAUC(Metric):
    """ROC AUC over a whole epoch: scores ``[B, C]`` against multi-hot labels (multi-label: sigmoid probabilities)
    or one-hot labels (single-label: softmax probabilities, each class one-vs-rest, as MONAI's ``ROCAUC``).

    ``average="macro"`` gives the mean AUC over the labels that have one (labels absent from, or present in
    every image of, the epoch have none and are left out of the mean, with a warning naming them; MONAI's
    ``ROCAUC(average="macro")`` would return ``nan`` instead). ``average="none"`` stores one metric per label,
    ``<name>_<class>``, in ``engine.state.metrics`` (``nan`` where undefined), e.g. ``val_auc_Effusion``.

    Args:
        class_names: the ``C`` label names (needed for ``average="none"``; used in warnings).
        average: ``"macro"`` or ``"none"``.
        output_transform: maps the engine output to ``(y_pred, y)``; default ``from_engine(["pred", "label"])``.
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        average: str = "macro",
        output_transform: Callable | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if average not in ("macro", "none"):
            raise ValueError(f"average must be 'macro' or 'none', got {average!r}.")
        if average == "none" and not class_names:
            raise ValueError("MultiLabelAUC(average='none') needs class_names to name the per-label metrics.")
        self.class_names = list(class_names) if class_names else None
        self.average = average
        if output_transform is None:
            from monai.handlers import from_engine

            output_transform = from_engine(["pred", "label"])
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._preds: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, output: tuple) -> None:
        y_pred, y = (_stack(o).detach().float().cpu() for o in output)
        self._preds.append(y_pred.reshape(y_pred.shape[0], -1))
        self._labels.append(y.reshape(y.shape[0], -1))

    def per_class(self) -> list[float]:
        """The AUC of each label over everything seen since the last reset."""
        if not self._preds:
            raise RuntimeError("MultiLabelAUC saw no output: is it attached to an engine that ran?")
        aucs = multilabel_auc(torch.cat(self._preds), torch.cat(self._labels))
        if self.class_names is not None and len(self.class_names) != len(aucs):
            raise ValueError(
                f"MultiLabelAUC has {len(self.class_names)} class names but outputs have {len(aucs)} labels."
            )
        return aucs

    def compute(self) -> float | dict[str, float]:
        aucs = self.per_class()
        if self.average == "none":
            return dict(zip(self.class_names, aucs))
        undefined = [self.class_names[i] if self.class_names else i for i, a in enumerate(aucs) if np.isnan(a)]
        if undefined:
            warnings.warn(
                f"MultiLabelAUC: no AUC for labels {undefined} (only one value in this epoch); mean over the others."
            )
        defined = [a for a in aucs if not np.isnan(a)]
        return float(np.mean(defined)) if defined else float("nan")

    def completed(self, engine, name: str) -> None:
        result = self.compute()
        if isinstance(result, dict):  # one scalar per label, so every logger can store it
            for class_name, value in result.items():
                engine.state.metrics[f"{name}_{class_name}"] = value
        else:
            engine.state.metrics[name] = result

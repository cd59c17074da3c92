"""At the end of training, evaluate the best student checkpoint and write (and log to MLflow) its report."""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.networks.checkpoint import load_weights
from monai_rd.metrics import classification_report, report_to_csv, report_to_markdown
from monai_rd.visualize import plot_confusion_matrix, plot_roc_curves, plot_training_curves
from monai_rd.utils import atomic_write_json, atomic_write_text
from monai_rd.utils.mlflow_runs import effective_tracking_uri, find_run_id
from monai_rd.handlers.mlflow_resilient import MLflowLink
from monai_rd.handlers.utils import probs_and_class_indices, rd_loss_terms

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["BestModelReport", "find_run_id", "predict_probs", "load_best", "log_report_to_mlflow"]


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    dataloader,
    device: str | torch.device = "cpu",
    image_key: str = Keys.IMAGE,
    label_key: str = Keys.LABEL,
    multi_label: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities ``[N, C]`` and labels of ``model`` over a labelled dataloader.

    Softmax probabilities and class indices ``[N]``; with ``multi_label``, sigmoid scores and the multi-hot
    labels ``[N, C]``.
    """
    model.eval()
    probs, labels = [], []
    for batch in dataloader:
        logits = model(torch.as_tensor(batch[image_key]).to(device)).float().cpu()
        label = torch.as_tensor(batch[label_key])
        if multi_label:
            p, y = logits.sigmoid(), label.reshape(logits.shape).float()
        else:
            p, y = probs_and_class_indices({Keys.PRED: logits.softmax(dim=1), Keys.LABEL: label})
        probs.append(p)
        labels.append(y)
    if not probs:
        raise ValueError("The report dataloader yielded no batch: is the split empty?")
    return torch.cat(probs), torch.cat(labels)


def load_best(model: nn.Module, checkpoint: str, device: str | torch.device, who: str) -> nn.Module:
    """A copy of ``model`` with the weights of the best ``checkpoint`` (``model`` itself is left alone)."""
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(
            f"{who}: no best checkpoint at {checkpoint!r}; did validation run at least once "
            "(val_interval <= max_epochs)?"
        )
    return load_weights(copy.deepcopy(model).cpu(), checkpoint).to(device)


def log_report_to_mlflow(
    tracking_uri: str | None,
    experiment_name: str,
    run_name: str | None,
    metrics: dict,
    files: Sequence[str],
    artifact_path: str,
    what: str,
    tags: dict | None = None,
) -> None:
    """Log ``metrics`` (NaN left out), ``tags`` and ``files`` to the newest MLflow run ``run_name``.

    A tracking failure is recorded (see :class:`MLflowLink`), never raised: the report files are on disk anyway.
    """
    import mlflow

    uri = effective_tracking_uri(tracking_uri)
    link = MLflowLink.for_uri(uri)
    names = [os.path.basename(f) for f in files]
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = link.attempt(
        f"{what} (run lookup)", find_run_id, client, experiment_name, run_name, names=names, warn=True
    )
    if run_id is None:
        if link.failure is None:
            link.drop(f"{what} (no run {run_name!r} in experiment {experiment_name!r})", names, warn=True)
        return
    metrics = {k: float(v) for k, v in metrics.items() if v == v}
    link.attempt(
        f"{what} metrics",
        lambda: [client.log_metric(run_id, k, v) for k, v in metrics.items()],
        names=list(metrics),
        warn=True,
    )
    for k, v in (tags or {}).items():
        link.attempt(f"{what} tags", client.set_tag, run_id, k, str(v), names=[k], warn=True)
    for f in files:
        link.attempt(
            "artifacts",
            client.log_artifact,
            run_id,
            f,
            artifact_path,
            names=[f"{artifact_path}/{os.path.basename(f)}"],
            warn=True,
        )


class BestModelReport:
    """Report on the best student checkpoint, computed on the validation set when training completes.

    Attach to the trainer. During training it collects the loss terms and weights of every iteration
    (:func:`rd_loss_terms`) and, when ``evaluator`` is given, its metrics each validation epoch. On
    ``COMPLETED`` it loads ``checkpoint`` into a copy of ``model``, predicts ``dataloader`` and writes into
    ``output_dir``: ``confusion_matrix.png``, ``roc_curves.png`` (one-vs-rest, per class),
    ``training_curves.png``, ``classification_report.{json,csv,md}`` (precision/recall/F1/support/AUC per
    class) and ``training_history.json``. They are logged as artifacts under ``artifact_path`` of the MLflow
    run ``run_name`` of ``experiment_name`` (the run MONAI's MLFlowHandler uses), with the metrics
    ``best_val_accuracy``, ``best_val_f1_macro`` and ``best_val_auc_macro``; an MLflow failure is recorded
    (see :class:`MLflowLink`), never raised. Multi-class (softmax) classification.

    Args:
        model: the deployable student (e.g. ``RDNet.deployable()``); it is copied, never modified.
        checkpoint: the best checkpoint written by ``CheckpointSaver`` (a state dict of ``model``).
        dataloader: the validation dataloader (batches with ``image`` ``[B, 3, H, W]`` and ``label``).
        class_names: the ``C`` class names in label order.
        output_dir: folder for the files above.
        evaluator: the validation engine, to record its metrics per epoch for the training curves.
        tracking_uri, experiment_name, run_name: the MLflow run to log to (``tracking_uri=None`` and
            ``experiment_name=None`` disable MLflow logging). ``MLFLOW_TRACKING_URI`` takes precedence.
        device: where to run the model.
        warnings: lines put at the top of ``classification_report.md`` (and in the JSON report), e.g. that the
            teacher had random weights.
    """

    def __init__(
        self,
        model: nn.Module,
        checkpoint: str,
        dataloader,
        class_names: Sequence[str],
        output_dir: str,
        evaluator: Engine | None = None,
        tracking_uri: str | None = None,
        experiment_name: str | None = "monai_experiment",
        run_name: str | None = None,
        artifact_path: str = "report",
        device: str | torch.device = "cpu",
        warnings: Sequence[str] = (),
    ) -> None:
        self.warnings = [str(w) for w in warnings]
        self.model = model
        self.checkpoint = os.fspath(checkpoint)
        self.dataloader = dataloader
        self.class_names = list(class_names)
        self.output_dir = os.fspath(output_dir)
        self.evaluator = evaluator
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.artifact_path = artifact_path
        self.device = device
        self.iteration_history: dict[str, list[tuple[int, float]]] = {}
        self.epoch_history: dict[str, list[tuple[int, float]]] = {}
        self.report: dict | None = None
        self.files: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_iteration)
        engine.add_event_handler(Events.COMPLETED, self)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._collect_epoch)

    def _collect_iteration(self, engine: Engine) -> None:
        for k, v in rd_loss_terms(engine.state.output).items():
            self.iteration_history.setdefault(k, []).append((engine.state.iteration, v))

    def _collect_epoch(self, engine: Engine) -> None:
        for k, v in engine.state.metrics.items():
            if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1):
                self.epoch_history.setdefault(k, []).append((engine.state.epoch, float(v)))

    def __call__(self, engine: Engine | None = None) -> dict:
        model = load_best(self.model, self.checkpoint, self.device, "BestModelReport")
        probs, labels = predict_probs(model, self.dataloader, self.device)
        report = classification_report(probs.numpy(), labels.numpy(), self.class_names)
        report["checkpoint"] = os.path.abspath(self.checkpoint)
        report["warnings"] = list(self.warnings)
        os.makedirs(self.output_dir, exist_ok=True)
        out = lambda name: os.path.join(self.output_dir, name)  # noqa: E731
        aucs = {r["class"]: r["auc"] for r in report["classes"]}
        self.files = [
            plot_confusion_matrix(
                report["confusion_matrix"],
                self.class_names,
                out("confusion_matrix.png"),
                title="Confusion matrix (best checkpoint, validation)",
            ),
            plot_roc_curves(report["roc"], aucs, out("roc_curves.png")),
            plot_training_curves(self.iteration_history, self.epoch_history, out("training_curves.png")),
            atomic_write_json(out("classification_report.json"), json.loads(json.dumps(report).replace("NaN", "null"))),
            atomic_write_text(out("classification_report.csv"), report_to_csv(report)),
            atomic_write_text(
                out("classification_report.md"),
                "".join(f"**{w}**\n\n" for w in self.warnings)
                + report_to_markdown(report, "Classification report (best checkpoint, validation set)"),
            ),
            atomic_write_json(
                out("training_history.json"), {"iteration": self.iteration_history, "epoch": self.epoch_history}
            ),
        ]
        self.report = report
        self.metrics = {
            "best_val_accuracy": report["accuracy"],
            "best_val_f1_macro": report["macro"]["f1"],
            "best_val_auc_macro": report["macro"]["auc"],
        }
        if self.experiment_name is not None:
            self._log_to_mlflow()
        for line in self.warnings:  # last in the log too, where a user reads first
            logging.getLogger("monai_rd").warning(line)
        return report

    def _log_to_mlflow(self) -> None:
        log_report_to_mlflow(
            self.tracking_uri,
            self.experiment_name,
            self.run_name,
            self.metrics,
            self.files,
            self.artifact_path,
            "best-model report",
        )

"""At the end of training, score the selected (best-validation) checkpoint on the test split, with bootstrap CIs."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from monai.data import DataLoader, Dataset
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.handlers.best_model_report import load_best, log_report_to_mlflow, predict_probs
from monai_rd.metrics import split_metrics
from monai_rd.utils import atomic_write_json

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["BestModelTestReport"]

logger = logging.getLogger(__name__)


class BestModelTestReport:
    """Score the checkpoint that model selection kept on the held-out ``test`` split, once, when training completes.

    Attach to the trainer. On ``COMPLETED`` it loads ``checkpoint`` (the best-validation student the bundle's
    checkpoint saver kept) into a copy of ``model``, predicts ``data`` (through ``transform``) and computes
    :func:`~monai_rd.metrics.split_metrics` with percentile-bootstrap intervals: ``test_accuracy``,
    ``test_f1_macro``, ``test_auc_macro`` (single-label) or ``test_mean_auc`` and ``test_auc_<finding>``
    (multi-label), each with ``_ci_low``/``_ci_high``, and ``test_num_samples``. It writes them with what was
    scored (split, protocol, checkpoint, interval settings) to ``<output_dir>/test_metrics.json`` and logs
    metrics, ``tags`` and the file to the MLflow run ``run_name`` (a tracking failure is recorded, not raised).
    The test split is used here and nowhere else: nothing of it reaches training or model selection.

    Args:
        model: the deployable student (e.g. ``RDNet.deployable()``); copied, never modified.
        checkpoint: the best checkpoint (a state dict of ``model``).
        data: the datalist's ``test`` entries (``{"image", "label", ...}``). Empty fails at construction.
        transform: the evaluation preprocessing (the bundle's ``validate::preprocessing``).
        class_names: the ``C`` class (finding) names in label order.
        output_dir: folder of ``test_metrics.json``.
        multi_label: sigmoid scores and multi-hot labels (ChestX-ray14) instead of softmax and class indices.
        split: the datalist split scored, named in the file (``test``).
        split_protocol: the split protocol of the datalist (``holdout`` or ``paper_4to1``, whose test set is
            also its validation set), named in the file and logged as the tag ``split_protocol``.
        n_resamples, confidence, seed: the bootstrap (see :func:`~monai_rd.metrics.bootstrap_ci`).
        tags: extra MLflow tags (e.g. ``{"test_split": "official"}``).
        tracking_uri, experiment_name, run_name: the MLflow run (``experiment_name=None`` disables MLflow).
    """

    def __init__(
        self,
        model: nn.Module,
        checkpoint: str,
        data: Sequence[dict],
        transform,
        class_names: Sequence[str],
        output_dir: str,
        multi_label: bool = False,
        split: str = "test",
        split_protocol: str = "holdout",
        n_resamples: int = 1000,
        confidence: float = 0.95,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        tags: dict | None = None,
        tracking_uri: str | None = None,
        experiment_name: str | None = "monai_experiment",
        run_name: str | None = None,
        artifact_path: str = "report",
        device: str | torch.device = "cpu",
        image_key: str = Keys.IMAGE,
        label_key: str = Keys.LABEL,
    ) -> None:
        if not data:
            raise ValueError(
                f"BestModelTestReport: the datalist's {split!r} split is empty; re-index the dataset with this "
                "version of monai_rd (every indexer makes a test split) or give it more images."
            )
        self.model = model
        self.checkpoint = os.fspath(checkpoint)
        self.data = list(data)
        self.transform = transform
        self.class_names = list(class_names)
        self.output_dir = os.fspath(output_dir)
        self.multi_label = multi_label
        self.split = split
        self.split_protocol = split_protocol
        self.bootstrap = {"n_resamples": int(n_resamples), "confidence": float(confidence), "seed": int(seed)}
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.tags = dict(tags or {})
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.artifact_path = artifact_path
        self.device = device
        self.keys = (image_key, label_key)
        self.metrics: dict[str, float] = {}
        self.file: str | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> dict[str, float]:
        model = load_best(self.model, self.checkpoint, self.device, "BestModelTestReport")
        loader = DataLoader(
            Dataset(self.data, self.transform), batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )
        probs, labels = predict_probs(model, loader, self.device, *self.keys, multi_label=self.multi_label)
        self.metrics = split_metrics(
            probs.numpy(),
            labels.numpy(),
            self.class_names,
            multi_label=self.multi_label,
            prefix="test",
            **self.bootstrap,
        )
        record = {
            "split": self.split,
            "split_protocol": self.split_protocol,
            "checkpoint": os.path.abspath(self.checkpoint),
            "interval": f"{100 * self.bootstrap['confidence']:g}% percentile bootstrap",
            **self.bootstrap,
            "tags": self.tags,
            "metrics": {k: (None if v != v else v) for k, v in self.metrics.items()},
        }
        os.makedirs(self.output_dir, exist_ok=True)
        self.file = atomic_write_json(os.path.join(self.output_dir, "test_metrics.json"), record)
        main = "test_mean_auc" if self.multi_label else "test_accuracy"
        logger.info(
            "%s split (%s, %d samples): %s = %.4f [%.4f, %.4f]",
            self.split,
            self.split_protocol,
            int(self.metrics["test_num_samples"]),
            main,
            self.metrics[main],
            self.metrics[f"{main}_ci_low"],
            self.metrics[f"{main}_ci_high"],
        )
        if self.experiment_name is not None:
            tags = {"split_protocol": self.split_protocol, "scored_split": self.split, **self.tags}
            log_report_to_mlflow(
                self.tracking_uri,
                self.experiment_name,
                self.run_name,
                self.metrics,
                [self.file],
                self.artifact_path,
                "test report",
                tags=tags,
            )
        return self.metrics

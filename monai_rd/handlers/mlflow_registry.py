"""Log the best student as an MLflow model, register it, and move the champion alias only on improvement."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
from monai.utils import IgniteInfo, min_version, optional_import, path_to_uri

from monai_rd.utils import sha256_file
from monai_rd.handlers.best_model_report import load_best
from monai_rd.handlers.mlflow_resilient import MLflowLink
from monai_rd.utils.mlflow_runs import effective_tracking_uri, find_run_id

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["MLflowModelRegistryHandler", "assert_student_only"]

logger = logging.getLogger("monai_rd.mlflow")


def assert_student_only(model: nn.Module) -> None:
    """Raise if ``model`` holds any part of an RD teacher (a ``FrozenTeacher`` or a whole ``RDNet``)."""
    from monai_rd.networks import FrozenTeacher, RDNet

    bad = [name or "<root>" for name, m in model.named_modules() if isinstance(m, (FrozenTeacher, RDNet))]
    if bad:
        raise ValueError(f"The model to register contains teacher modules {bad}; register RDNet.deployable() only.")


class MLflowModelRegistryHandler:
    """On trainer ``COMPLETED``: the best student -> MLflow model -> registered version -> alias if better.

    Steps: load ``checkpoint`` (the best checkpoint of the validation key metric) into a copy of ``model`` (the
    deployable student: student backbone + shared head, nothing of the teacher, which is checked); log it
    with ``mlflow.pytorch.log_model`` (signature and a synthetic input example ``[1, *input_shape]`` in
    ``[0, 1]``, never a patient image) into the run ``run_name``; register it under
    ``registered_model_name``; tag the version with ``tags`` (teacher, student, split hash ...), the metrics
    of the best checkpoint and the checkpoint's sha256; then move ``alias`` to it only if it beats the
    current alias holder on ``key_metric`` (strictly; read from the holder's version tag) or if no version
    holds the alias yet. MLflow failures are recorded (see :class:`MLflowLink`) and logged, never raised:
    the checkpoint stays on disk.

    The metrics of the best checkpoint come from ``evaluator``: its ``state.metrics`` are kept at each epoch
    that sets a new ``best_metric`` (the epoch ``CheckpointSaver`` writes ``checkpoint``).

    Args:
        model: the deployable student (``RDNet.deployable()``); copied, never modified.
        checkpoint: path of the best checkpoint (state dict of ``model``).
        registered_model_name: registry name.
        evaluator: the validation engine (source of the best checkpoint's metrics).
        key_metric: metric deciding the alias (``val_accuracy``); must be among the evaluator's metrics.
        higher_is_better: direction of ``key_metric``.
        alias: the alias to move (``champion``).
        input_shape: ``(3, H, W)`` of one input image, for the signature and input example.
        tags: extra version tags (values turned into strings).
        tracking_uri, experiment_name, run_name: the MLflow run (``MLFLOW_TRACKING_URI`` takes precedence).
        artifact_name: name of the logged model in the run.
        pip_requirements: written into the pytorch-flavour model (default: torch, torchvision, monai, monai-rd pins).
        serving: how to log a servable model: an object with ``log_model(model, name, registered_model_name)``
            (and optionally ``render_card(metrics, **values) -> str``), i.e. :class:`monai_rd.deploy.PyfuncServing`,
            which the bundles pass. It logs an MLflow pyfunc that ``mlflow models serve`` builds from PyPI alone
            and renders the bundle's model card, logged as ``model_card.md`` and as the version's description.

    Without ``serving`` the model is saved with ``mlflow.pytorch`` (``serialization_format="pickle"``, the whole
    ``StudentClassifier``), which loading needs ``monai_rd`` for and ``mlflow models serve`` cannot build.
    """

    def __init__(
        self,
        model: nn.Module,
        checkpoint: str,
        registered_model_name: str,
        evaluator: Engine | None = None,
        key_metric: str = "val_accuracy",
        higher_is_better: bool = True,
        alias: str = "champion",
        input_shape: Sequence[int] = (3, 224, 224),
        tags: Mapping[str, Any] | None = None,
        tracking_uri: str | None = None,
        experiment_name: str = "monai_experiment",
        run_name: str | None = None,
        artifact_name: str = "model",
        pip_requirements: Sequence[str] | None = None,
        serving: Any = None,
    ) -> None:
        self.model = model
        self.checkpoint = os.fspath(checkpoint)
        self.registered_model_name = registered_model_name
        self.evaluator = evaluator
        self.key_metric = key_metric
        self.higher_is_better = higher_is_better
        self.alias = alias
        self.input_shape = tuple(int(s) for s in input_shape)
        self.tags = dict(tags or {})
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.artifact_name = artifact_name
        self.pip_requirements = pip_requirements
        self.serving = serving
        self.card: str | None = None
        self.best_metrics: dict[str, float] = {}
        self.version: str | None = None
        self.decision: str | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._snapshot)

    def _snapshot(self, engine: Engine) -> None:
        if engine.state.best_metric_epoch == engine.state.epoch:
            self.best_metrics = {
                k: float(v)
                for k, v in engine.state.metrics.items()
                if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)
            }
            # kept on the evaluator's state too, which the resume checkpoint saves (BestMetricState)
            engine.state.best_epoch_metrics = dict(self.best_metrics)

    def __call__(self, engine: Engine | None = None) -> str | None:
        # a resumed run whose best epoch came before the interruption gets those metrics from the checkpoint
        restored = getattr(self.evaluator.state, "best_epoch_metrics", {}) if self.evaluator is not None else {}
        return self.register(self.best_metrics or restored)

    def _default_requirements(self) -> list[str]:
        import monai
        import torchvision

        import monai_rd

        return [
            f"torch=={torch.__version__.split('+')[0]}",
            f"torchvision=={torchvision.__version__.split('+')[0]}",
            f"monai=={monai.__version__}",
            f"monai-rd=={monai_rd.__version__}",
        ]

    def load_best(self) -> nn.Module:
        """A CPU copy of ``model`` holding the best checkpoint's weights, in eval mode."""
        model = load_best(self.model, self.checkpoint, "cpu", "MLflowModelRegistryHandler").eval()
        assert_student_only(model)
        return model

    def _log_card(self, client, run_id: str, metrics: Mapping[str, float]) -> None:
        """Render the model card from this run's own metrics (and the best checkpoint's) and log it."""
        import mlflow

        render = getattr(self.serving, "render_card", None)
        if render is None:
            return
        logged = dict(client.get_run(run_id).data.metrics)
        self.card = render(
            {**logged, **{k: float(v) for k, v in metrics.items()}},
            registered_model=self.registered_model_name,
            run_id=run_id,
            **self.tags,
        )
        if self.card is not None:
            mlflow.log_text(self.card, "model_card.md")

    def is_better(self, new: float, current: float) -> bool:
        return new > current if self.higher_is_better else new < current

    def register(self, metrics: Mapping[str, float]) -> str | None:
        """Log, register, tag and maybe promote the best student; returns the new version (None if MLflow failed)."""
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.models import infer_signature

        if self.key_metric not in metrics:
            raise KeyError(
                f"MLflowModelRegistryHandler: key metric {self.key_metric!r} not among the best checkpoint's metrics "
                f"{sorted(metrics)}; set the bundle's registry key metric to one of them."
            )
        model = self.load_best()
        example = np.random.default_rng(0).random((1, *self.input_shape), dtype=np.float32)
        with torch.no_grad():
            output = model(torch.from_numpy(example)).numpy()
        signature = infer_signature(example, output)
        uri = effective_tracking_uri(self.tracking_uri)
        link = MLflowLink.for_uri(uri)
        what = f"model: best student ({self.checkpoint}) as registered model {self.registered_model_name!r}"
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.version, self.decision, self.card = None, None, None

        def _log() -> str:
            run_id = find_run_id(client, self.experiment_name, self.run_name)
            # the fluent API needs the global URIs; set them for this call only (set_tracking_uri also
            # writes MLFLOW_TRACKING_URI into os.environ), then put back exactly what was there
            import mlflow.tracking._model_registry.utils as registry_utils
            import mlflow.tracking._tracking_service.utils as tracking_utils

            previous = (
                tracking_utils._tracking_uri,
                registry_utils._registry_uri,
                {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")},
            )
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            try:
                if run_id is None:
                    experiment = client.get_experiment_by_name(self.experiment_name)
                    if experiment is not None:
                        experiment_id = experiment.experiment_id
                    else:  # artifacts next to a SQLite store, as MONAI's MLFlowHandler does
                        location = None
                        if uri.startswith("sqlite:///"):
                            location = path_to_uri(Path(uri[len("sqlite:///") :]).parent / "mlruns")
                        experiment_id = client.create_experiment(self.experiment_name, artifact_location=location)
                    run = mlflow.start_run(experiment_id=experiment_id, run_name=self.run_name)
                else:
                    run = mlflow.start_run(run_id=run_id)
                with run:
                    if self.serving is not None:
                        info = self.serving.log_model(model, self.artifact_name, self.registered_model_name)
                        self._log_card(client, run.info.run_id, metrics)
                    else:
                        info = mlflow.pytorch.log_model(
                            model,
                            name=self.artifact_name,
                            signature=signature,
                            input_example=example,
                            pip_requirements=list(self.pip_requirements or self._default_requirements()),
                            registered_model_name=self.registered_model_name,
                            serialization_format="pickle",
                        )
            finally:
                mlflow.set_tracking_uri(previous[0])
                mlflow.set_registry_uri(previous[1])
                for k, v in previous[2].items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            return str(info.registered_model_version)

        version = link.attempt(what, _log, names=[self.alias], warn=True)
        if version is None:
            return None
        self.version = version
        if self.card is not None:
            link.attempt(
                f"model card as the description of {self.registered_model_name!r} version {version}",
                client.update_model_version,
                self.registered_model_name,
                version,
                self.card,
                warn=True,
            )
        tags = {
            **{k: str(v) for k, v in self.tags.items()},
            **{k: repr(float(v)) for k, v in metrics.items()},
            "checkpoint_sha256": sha256_file(self.checkpoint),
            "key_metric": self.key_metric,
        }

        def _tag_and_promote() -> str:
            for k, v in tags.items():
                client.set_model_version_tag(self.registered_model_name, version, k, v)
            new = float(metrics[self.key_metric])
            try:
                current = client.get_model_version_by_alias(self.registered_model_name, self.alias)
            except MlflowException as e:
                if "RESOURCE_DOES_NOT_EXIST" not in str(e.error_code) and "not found" not in str(e).lower():
                    raise
                current = None
            if current is None:
                decision = f"promoted: first version with alias {self.alias!r} ({self.key_metric}={new:.6g})"
            elif self.key_metric not in current.tags:
                return (
                    f"kept: alias {self.alias!r} stays on version {current.version}, which has no "
                    f"{self.key_metric!r} tag to compare with"
                )
            elif self.is_better(new, float(current.tags[self.key_metric])):
                decision = (
                    f"promoted: {self.key_metric} {new:.6g} beats {float(current.tags[self.key_metric]):.6g} "
                    f"of version {current.version}"
                )
            else:
                return (
                    f"kept: {self.key_metric} {new:.6g} does not beat {float(current.tags[self.key_metric]):.6g} "
                    f"of version {current.version}, alias {self.alias!r} stays there"
                )
            client.set_registered_model_alias(self.registered_model_name, self.alias, version)
            return decision

        self.decision = link.attempt(
            f"version tags and alias {self.alias!r} of {self.registered_model_name!r} version {version}",
            _tag_and_promote,
            names=list(tags),
            warn=True,
        )
        if self.decision is not None:
            link.attempt(
                "version tag alias_decision",
                client.set_model_version_tag,
                self.registered_model_name,
                version,
                "alias_decision",
                self.decision,
            )
            logger.info("MLflow: registered %s version %s; %s", self.registered_model_name, version, self.decision)
        return version

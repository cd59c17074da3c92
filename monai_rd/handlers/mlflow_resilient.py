"""MLflow logging that never stops training: MONAI's MLFlowHandler behind a layer that records what it dropped.

When the tracking server (or store) fails, the first error is logged as a warning, the tracking URI is marked
offline for the rest of the process (no further slow retries), and every later logging call is recorded as
*not logged*. At the end a summary warning (and optionally a JSON file) says exactly what is missing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from monai.handlers import MLFlowHandler
from monai.utils import flatten_dict

from monai_rd.utils import atomic_write_json
from monai_rd.utils.mlflow_runs import effective_tracking_uri

__all__ = ["MLflowLink", "ResilientMLFlowHandler", "effective_tracking_uri"]

logger = logging.getLogger("monai_rd.mlflow")


def _errors() -> tuple[type[BaseException], ...]:
    import requests
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, OSError, ConnectionError, TimeoutError)


class MLflowLink:
    """State shared by every handler logging to one tracking URI in this process.

    ``attempt(what, fn, names=..., step=...)`` runs ``fn``; on an MLflow/connection error it records the
    failure, marks the URI offline and drops ``what``; once offline, calls are dropped without trying.
    """

    _links: dict[str, MLflowLink] = {}

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.failure: str | None = None
        self.dropped: dict[str, dict[str, Any]] = {}

    @classmethod
    def for_uri(cls, uri: str) -> MLflowLink:
        if uri not in cls._links:
            cls._links[uri] = cls(uri)
        return cls._links[uri]

    def reset(self) -> None:
        """Forget the failure and the dropped items (a new run may try the server again)."""
        self.failure = None
        self.dropped = {}

    def drop(self, what: str, names=(), step: int | None = None, warn: bool = False) -> None:
        entry = self.dropped.setdefault(what, {"names": [], "steps": []})
        entry["names"] += [str(n) for n in names if str(n) not in entry["names"]]
        if step is not None:
            entry["steps"].append(int(step))
        if warn:
            logger.warning(
                "MLflow (%s): NOT logged: %s%s", self.uri, what, f" ({', '.join(map(str, names))})" if names else ""
            )

    def attempt(
        self, what: str, fn: Callable[..., Any], *args, names=(), step: int | None = None, warn: bool = False, **kwargs
    ) -> Any:
        """``fn(*args, **kwargs)``, or ``None`` when MLflow is (or goes) unreachable; ``what`` is then recorded."""
        if self.failure is not None:
            self.drop(what, names, step, warn=warn)
            return None
        try:
            return fn(*args, **kwargs)
        except _errors() as e:
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            self.failure = f"{type(e).__name__}: {first}"
            logger.warning(
                "MLflow tracking at %s failed while logging %s (%s). Training goes on WITHOUT MLflow for the rest "
                "of this run; what is not logged is listed at the end.",
                self.uri,
                what,
                self.failure,
            )
            self.drop(what, names, step)
            return None

    def summary(self) -> str:
        """One line per dropped kind of item, with names and step ranges."""
        lines = []
        for what, entry in self.dropped.items():
            text = what
            if entry["names"]:
                text += ": " + ", ".join(entry["names"])
            steps = sorted(set(entry["steps"]))
            if steps:
                text += (
                    f" at steps {steps[0]}-{steps[-1]} ({len(steps)} steps)"
                    if len(steps) > 1
                    else f" at step {steps[0]}"
                )
            lines.append(text)
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "tracking_uri": self.uri,
            "failure": self.failure,
            "not_logged": {k: {"names": v["names"], "steps": sorted(set(v["steps"]))} for k, v in self.dropped.items()},
        }


class ResilientMLFlowHandler(MLFlowHandler):
    """MONAI's :class:`~monai.handlers.MLFlowHandler` whose MLflow calls cannot fail the training.

    Takes every argument of MLFlowHandler, plus:

    Args:
        not_logged_file: where to write (atomically, as JSON) what could not be logged, when anything was
            dropped; written when this handler closes the run (``close_on_complete=True``).
        run_tags: tags set on the run when it starts (e.g. ``teacher_weights_source``).
        tracking_params: the engine-state attributes logged as run parameters when the engine starts (default:
            MONAI's ``max_epochs`` and ``epoch_length``). A handler on an engine that starts before the trainer
            whose values the run should hold (a stage 1's evaluator: ``max_epochs`` 1) passes ``[]``: MLflow
            refuses to change a logged parameter, so the trainer's values would otherwise be refused and the run
            would lose every later metric.

    Failures are shared per tracking URI (:class:`MLflowLink`), so the trainer's and the validator's
    handlers, and :class:`MLflowModelRegistryHandler`/:class:`BestModelReport`, report into one list; the
    handler that closes the run logs the summary warning.
    """

    def __init__(
        self,
        *args,
        not_logged_file: str | None = None,
        run_tags: dict | None = None,
        tracking_params: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if tracking_params is not None:
            self.default_tracking_params = list(tracking_params)
        self.link = MLflowLink.for_uri(effective_tracking_uri(kwargs.get("tracking_uri", args[0] if args else None)))
        self.not_logged_file = not_logged_file
        self.run_tags = {str(k): str(v) for k, v in (run_tags or {}).items()}

    def start(self, engine) -> None:
        names = list(self.experiment_param or {})
        self.link.attempt("run start and parameters", super().start, engine, names=names, warn=False)
        if self.run_tags and self.cur_run is not None:
            run_id = self.cur_run.info.run_id
            for k, v in self.run_tags.items():
                self.link.attempt("run tags", self.client.set_tag, run_id, k, v, names=[k])

    def _log_params(self, params: dict[str, Any]) -> None:
        if self.cur_run is None:
            self.link.drop("parameters (no run)", list(params))
            return
        self.link.attempt("parameters", super()._log_params, params, names=list(params))

    def _log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        names = list(flatten_dict(metrics))
        if self.cur_run is None:
            self.link.drop("metrics (no run)", names, step)
            return
        log = super()._log_metrics
        self.link.attempt("metrics", lambda: log(metrics, step=step), names=names, step=step)

    def complete(self) -> None:
        for path in self._parse_artifacts() if self.artifacts else []:
            name = os.path.basename(path)
            if self.cur_run is None:
                self.link.drop("artifacts", [name], warn=True)
                continue
            self.link.attempt("artifacts", self.client.log_artifact, self.cur_run.info.run_id, path, names=[name])

    def close(self) -> None:
        run_id = self.cur_run.info.run_id if self.cur_run is not None else None
        self.link.attempt("run end (status FINISHED)", super().close, names=[run_id] if run_id else ())
        self.cur_run = None
        if self.link.dropped:
            logger.warning(
                "MLflow tracking at %s failed (%s); these were NOT logged to MLflow (run %s):\n%s\n"
                "Local outputs (checkpoint, reports) are kept on disk.",
                self.link.uri,
                self.link.failure,
                run_id,
                self.link.summary(),
            )
            if self.not_logged_file:
                atomic_write_json(self.not_logged_file, {**self.link.as_dict(), "run_id": run_id})
                logger.warning("MLflow: the list of what was not logged is in %s", self.not_logged_file)
        self.link.reset()

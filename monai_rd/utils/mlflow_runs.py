"""MLflow run helpers, one home: which tracking URI a run logs to, and finding, reading, tagging and retiring runs.

Every layer that looks an MLflow run up uses these: the handlers (the reports and the registry log to the run a
bundle started), the bundles' last lines (:mod:`monai_rd.bundle.next_steps`), and the protocol runner (it reads a
cell's metrics back from its run). ``mlflow`` is imported inside each function, so importing this module is cheap.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "effective_tracking_uri", "find_run_id", "find_mlflow_run", "read_run_metrics", "set_run_tags",
    "retire_failed_runs",
]  # fmt: skip


def effective_tracking_uri(tracking_uri: str | None = None) -> str:
    """The tracking URI MONAI's MLFlowHandler uses: ``MLFLOW_TRACKING_URI`` first, then the argument, then
    ``sqlite:///<cwd>/mlruns.db``."""
    from monai.utils import path_to_sqlite_uri

    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or tracking_uri
        or path_to_sqlite_uri(os.path.join(os.getcwd(), "mlruns.db"))
    )


def find_run_id(client, experiment_name: str, run_name: str | None) -> str | None:
    """Id of the most recent run called ``run_name`` in ``experiment_name`` (None if there is none)."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None or run_name is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.run_name = '{run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def find_mlflow_run(tracking_uri: str, experiment_name: str, run_name: str | None,
                    registered_model_name: str | None = None) -> dict[str, Any]:  # fmt: skip
    """``{"run_id", "model_version"}`` of the newest run ``run_name`` (None: of any name) of ``experiment_name`` in
    ``tracking_uri`` (None where not found), or ``{"error": "<why>"}`` when the store cannot be read: a finished
    run never fails on its last lines."""
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        if run_name is None:  # the newest run of the experiment
            experiment = client.get_experiment_by_name(experiment_name)
            runs = (
                []
                if experiment is None
                else client.search_runs(
                    [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
                )
            )
            run_id = runs[0].info.run_id if runs else None
        else:
            run_id = find_run_id(client, experiment_name, run_name)
        version = None
        if run_id and registered_model_name:
            versions = client.search_model_versions(f"run_id = '{run_id}'")
            versions = [v for v in versions if v.name == registered_model_name]
            version = max((v.version for v in versions), key=int, default=None)
        return {"run_id": run_id, "model_version": version}
    except Exception as e:  # noqa: BLE001 - an unreachable store is reported, the run already succeeded
        return {"error": f"{type(e).__name__}: {e}"}


def read_run_metrics(tracking_uri: str, experiment: str, run_name: str, key_metric: str, since_ms: int = 0) -> dict:
    """Final metrics of the newest FINISHED MLflow run named ``run_name`` started at or after ``since_ms``.

    Returns ``{"run_id", "best_epoch", <every val_* metric at the epoch where key_metric is highest>,
    "last_<key_metric>", "epochs", <every test_* metric>, "split_protocol"}``: the best epoch is the one whose
    student the bundle's CheckpointSaver kept (first epoch on ties, as ignite's Checkpoint); the ``test_*``
    metrics (and their ``_ci_low``/``_ci_high``) are that student's scores on the test split, logged once at the
    end of the run.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise RuntimeError(f"MLflow experiment {experiment!r} not found in {tracking_uri}.")
    runs = [
        r
        for r in client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{run_name}'")
        if r.info.status == "FINISHED" and r.info.start_time >= since_ms
    ]
    if not runs:
        raise RuntimeError(f"No finished MLflow run named {run_name!r} in experiment {experiment!r} ({tracking_uri}).")
    run = max(runs, key=lambda r: r.info.start_time)
    histories = {}
    for name in run.data.metrics:
        if name.startswith("val_") or name == key_metric:
            hist = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: (m.step, m.timestamp))
            histories[name] = {m.step: m.value for m in hist}
    if key_metric not in histories:
        raise RuntimeError(
            f"Run {run_name!r} logged no {key_metric!r} (it logged {sorted(run.data.metrics)}); "
            "set 'metric' in the grid."
        )
    key_hist = histories[key_metric]
    best_epoch = max(sorted(key_hist), key=lambda s: key_hist[s])  # max keeps the first of equal values
    result: dict[str, Any] = {"run_id": run.info.run_id, "best_epoch": best_epoch, "epochs": max(key_hist)}
    for name, hist in histories.items():
        if best_epoch in hist:
            result[name] = hist[best_epoch]
    result[f"last_{key_metric}"] = key_hist[max(key_hist)]
    result.update({k: v for k, v in run.data.metrics.items() if k.startswith("test_")})
    if "split_protocol" in run.data.tags:
        result["split_protocol"] = run.data.tags["split_protocol"]
    return result


def set_run_tags(tracking_uri: str, run_id: str, tags: dict) -> None:
    """Set ``tags`` (values as text) on the run ``run_id``; a tracking failure is ignored (the metrics are read)."""
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        for key, value in tags.items():
            client.set_tag(run_id, key, str(value))
    except Exception:
        pass


def retire_failed_runs(tracking_uri: str, experiment: str, run_name: str, attempt: int) -> None:
    """Rename unfinished runs of a failed cell so the retry (same run name) does not append to them."""
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return
        for r in client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{run_name}'"):
            if r.info.status != "FINISHED":
                client.update_run(r.info.run_id, status="FAILED", name=f"{run_name} (failed attempt {attempt})")
    except Exception:  # the cell's failure is already recorded; a tracking hiccup must not hide it
        pass

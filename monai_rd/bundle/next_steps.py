"""What a finished run says last: where its results went and what to run next, formatted in one place.

Training ends with :func:`report_training_done` (the model file, the MLflow run and the commands that evaluate,
predict with and serve it), inference with :func:`report_inference_done` (``predictions.csv`` and, when inputs
were skipped, ``unreadable_inputs.csv``). ``monai-rd demo`` prints the same lines for the run it trained.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

from monai_rd.bundle.paths import bundle_command
from monai_rd.utils.mlflow_runs import find_mlflow_run

__all__ = ["find_mlflow_run", "training_done_lines", "inference_done_lines", "report_training_done",
           "report_inference_done"]  # fmt: skip


def training_done_lines(bundle: str, output_dir: str, model_file: str, tracking_uri: str, experiment_name: str,
                        run_name: str | None = None, registered_model_name: str | None = None,
                        run: dict[str, Any] | None = None, input_dir: str | None = None) -> list[str]:  # fmt: skip
    """The lines a training run ends with.

    Args:
        bundle: the bundle's name or its folder's absolute path (``@bundle_root``).
        output_dir, model_file: the run's output folder and best student checkpoint (``model.pt``).
        tracking_uri, experiment_name, run_name: where the MLflow run is and how to find it.
        registered_model_name: the registered MLflow model that serves the student (None: no serve line).
        run: the run's ``{"run_id", "model_version"}`` (None: looked up with :func:`find_mlflow_run`).
        input_dir: a folder of images for the inference command (None: a ``<folder>`` placeholder).
    """
    output_dir = os.path.abspath(output_dir)
    not_logged = os.path.join(output_dir, "mlflow_not_logged.json")
    if run is None and os.path.isfile(not_logged):  # the store failed during the run: do not wait on it again
        run = {"error": "MLflow failed during the run"}
    run = find_mlflow_run(tracking_uri, experiment_name, run_name, registered_model_name) if run is None else run
    lines = [f"Training finished. Best student (deployable, no teacher): {os.path.abspath(model_file)}"]
    if run.get("run_id"):
        lines.append(f"MLflow run {run['run_id']} (experiment {experiment_name!r}) in {tracking_uri}; "
                     f"browse: mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}")  # fmt: skip
    else:
        why = run.get("error") or f"no run named {run_name!r} in experiment {experiment_name!r}"
        lines.append(
            f"MLflow run not found in {tracking_uri} ({why}); {not_logged} lists what was not logged, if anything."
        )
    lines.append(
        "Evaluate it on the test split:\n  "
        + bundle_command(bundle, ["train.json", "evaluate.json"], output_dir=output_dir)
    )
    lines.append(
        "Predict a folder of images (writes predictions.csv):\n  "
        + (
            bundle_command(bundle, "inference.json", output_dir=output_dir, input_dir=input_dir)
            if input_dir
            else bundle_command(bundle, "inference.json", output_dir=output_dir) + " --input_dir <folder>"
        )
    )
    if registered_model_name and run.get("model_version"):
        model_uri = f"models:/{registered_model_name}/{run['model_version']}"
        lines.append("Serve it over HTTP (MLflow):\n  "
                     f"MLFLOW_TRACKING_URI={shlex.quote(tracking_uri)} mlflow models serve -m {model_uri} "
                     "--env-manager local -h 127.0.0.1 -p 5001")  # fmt: skip
    return lines


def inference_done_lines(output_file: str, errors_file: str | None = None, n: int | None = None) -> list[str]:
    """The lines an inference run ends with: where ``predictions.csv`` is, and ``unreadable_inputs.csv`` if written."""
    count = f" ({n} image{'s' if n != 1 else ''})" if n is not None else ""
    lines = [f"Predictions{count} written to {os.path.abspath(output_file)}"]
    if errors_file and os.path.isfile(errors_file):
        lines.append(f"Unreadable inputs (skipped) listed in {os.path.abspath(errors_file)}")
    return lines


def report_training_done(*args: Any, **kwargs: Any) -> list[str]:
    """Print :func:`training_done_lines` (same arguments); returns them. The bundles' last ``run`` step."""
    lines = training_done_lines(*args, **kwargs)
    print("\n".join(lines), flush=True)
    return lines


def report_inference_done(output_file: str, errors_file: str | None = None, n: int | None = None) -> list[str]:
    """Print :func:`inference_done_lines`; returns them. The last ``run`` step of the bundles' ``inference.json``."""
    lines = inference_done_lines(output_file, errors_file, n)
    print("\n".join(lines), flush=True)
    return lines

"""Inference and evaluation remember their training: the settings a checkpoint was trained with.

Training writes ``<output_dir>/executed_config.json`` (:func:`monai_rd.bundle.write_executed_config`): the
config as it ran, every command-line override applied and the run's expression ids resolved (image size, student,
class names, modality preset and its intensity options, device ...), and ``<output_dir>/metadata.json``
(:func:`write_run_metadata`): the bundle metadata with the run's class count and input shape. ``inference.json`` and ``evaluate.json`` read those ids from it (:func:`read_training_config`), so
``--output_dir`` alone is enough, and refuse an explicit override that contradicts it
(:func:`check_matches_training`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from monai_rd.bundle.config_check import ConfigError

__all__ = [
    "EXECUTED_CONFIG", "RUN_METADATA", "REMEMBERED_IDS", "remembered_settings", "read_training_config",
    "check_matches_training", "write_run_metadata",
]  # fmt: skip

#: file name of the executed train config inside a run's ``output_dir``
EXECUTED_CONFIG = "executed_config.json"
#: file name of the run's bundle metadata (its class count and input shape) inside a run's ``output_dir``
RUN_METADATA = "metadata.json"
#: ids that inference and evaluation take from the training run (those a bundle has): what the checkpoint
#: expects as input (size, modality preset and its intensity options) and what its outputs mean
REMEMBERED_IDS = (
    "image_size", "student", "class_names", "modality", "ct_intensity", "dicom_voi", "dicom_window",
    "intensity_percentiles",
)  # fmt: skip


def remembered_settings(training: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`REMEMBERED_IDS` of an executed train config: a plain dict to embed in a packaged bundle."""
    return {k: training[k] for k in REMEMBERED_IDS if k in training}


def read_training_config(output_dir: str | os.PathLike) -> dict[str, Any]:
    """The executed train config of the run in ``output_dir`` (ids resolved to the values it trained with).

    Raises:
        FileNotFoundError: ``output_dir`` holds no ``executed_config.json`` (not a training run's folder).
    """
    path = os.path.join(os.fspath(output_dir), EXECUTED_CONFIG)
    if not os.path.isfile(path):
        # read by inference.json/evaluate.json, also outside `monai.bundle run` (verify_net_in_out), whose
        # initialize would install the report: put this reason on the last line there too
        from monai_rd.bundle.errors import install_error_report

        install_error_report()
        raise FileNotFoundError(
            f"{path!r} does not exist: --output_dir must be the output_dir of a finished training run "
            "(the folder holding model.pt and executed_config.json)."
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config["_path"] = path
    return config


def check_matches_training(training: Mapping[str, Any], **values: Any) -> dict[str, Any]:
    """Raise :class:`ConfigError` if a value differs from the one the checkpoint was trained with.

    ``values`` are the final values of the ids that ``inference.json``/``evaluate.json`` take from
    ``training`` (the dict of :func:`read_training_config`); they differ only when overridden on the command
    line. An id the training run did not record, or recorded unresolved (a ``$`` expression), is an error
    too, since the checkpoint's setting cannot be known. Returns ``values``.
    """
    source = training.get("_path", EXECUTED_CONFIG)
    bad = []
    for key, value in values.items():
        if key not in training or (isinstance(training[key], str) and training[key].startswith("$")):
            raise ConfigError(
                f"{source!r} does not record the resolved {key!r} of the training run; retrain with "
                "this version of monai_rd, or use a run that records it."
            )
        trained = training[key]
        if _norm(value) != _norm(trained):
            bad.append(f"  --{key} {value!r}: the checkpoint was trained with {trained!r}")
    if bad:
        raise ConfigError(
            f"override(s) contradict the training run recorded in {source!r}:\n" + "\n".join(bad)
            + "\nDrop these overrides: the training run's settings are used by default."
        )  # fmt: skip
    return values


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def write_run_metadata(
    meta_file: str | os.PathLike,
    path: str | os.PathLike,
    class_names: Sequence[str],
    image_size: int,
    spatial_dims: int | None = None,
    in_channels: int | None = None,
) -> str:
    """Write the bundle's ``metadata.json`` as this run trained: its class count and names, its input shape.

    ``network_data_format.outputs.pred`` gets ``num_channels = C``, ``spatial_shape = [1, C]`` and ``channel_def``
    from ``class_names``; ``inputs.image`` gets ``spatial_shape = [image_size] * spatial_dims`` and ``in_channels``
    (both default to the bundle file's). The training bundles write it to ``<output_dir>/metadata.json`` and log it
    to MLflow, so ``python -m monai.bundle verify_net_in_out network_def --meta_file <output_dir>/metadata.json
    --config_file configs/inference.json --output_dir <output_dir>`` checks the run's own network (a bundle that
    takes its classes from the data, like rd_clinical, has no fixed class count in its shipped file).

    Returns:
        ``path``, written atomically.
    """
    from monai_rd.utils import atomic_write_json

    with open(meta_file, encoding="utf-8") as f:
        meta = json.load(f)
    fmt = meta.setdefault("network_data_format", {})
    image = fmt.setdefault("inputs", {}).setdefault("image", {})
    dims = int(spatial_dims) if spatial_dims is not None else len(image.get("spatial_shape", [0, 0]))
    image["spatial_shape"] = [int(image_size)] * dims
    if in_channels is not None and int(in_channels) != image.get("num_channels"):
        image["num_channels"] = int(in_channels)
        image["channel_def"] = {"0": "R", "1": "G", "2": "B"} if in_channels == 3 else {
            str(i): "intensity" for i in range(int(in_channels))}  # fmt: skip
    names = [str(c) for c in class_names]
    pred = fmt.setdefault("outputs", {}).setdefault("pred", {})
    pred.update(num_channels=len(names), spatial_shape=[1, len(names)],
                channel_def={str(i): c for i, c in enumerate(names)})  # fmt: skip
    return atomic_write_json(path, meta)

"""Serving an RD bundle with MONAI Label: package a trained run as a bundle MONAI Label can load, and map
MONAI Label datastore labels to class indices for RD training.

Nothing here imports ``monailabel``: the app in ``apps/monailabel`` (which does) calls these functions, and they
are tested in the core environment.

MONAI Label's ``BundleInferTask`` reads ``configs/inference.json`` (ids ``network_def``, ``preprocessing``,
``inferer``, ``postprocessing``), ``configs/metadata.json`` (labels from
``network_data_format.outputs.pred.channel_def``) and the weights ``models/model.pt``. A run of the RD
``train.json`` writes the best student to ``<output_dir>/model.pt`` and its settings to
``<output_dir>/executed_config.json``; :func:`prepare_label_bundle` turns the two into such a bundle.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence

from monai_rd.bundle import remembered_settings
from monai_rd.deploy.serving import export_run_serving
from monai_rd.utils import atomic_write_json

__all__ = ["SERVING_DIR", "SERVED_KEYS", "prepare_label_bundle", "read_class_label", "classification_datalist"]

SERVING_DIR = "serving"  # the serving folder inside a packaged bundle (monai_rd.deploy.serving)
# ids of the training run copied into the packaged bundle's inference.json and train.json (where they exist),
# so the served network and its preprocessing are the ones that were trained
SERVED_KEYS = (
    "teacher",
    "teacher_weights",
    "student",
    "student_weights",
    "image_size",
    "reprogrammer_blocks",
    "temperature",
    "loss_weights",
    "loss_weight_unit",
    "val_fraction",
    "seed",
)


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} does not exist.")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def prepare_label_bundle(
    bundle_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    dest: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    overrides: Mapping | None = None,
) -> str:
    """Copy the bundle at ``bundle_root`` to ``dest`` with the trained student as ``models/model.pt``.

    The run's settings (``SERVED_KEYS`` from ``<output_dir>/executed_config.json``, then ``overrides``) are
    written into the copy's ``configs/inference.json`` and ``configs/train.json``, and the checkpoint is
    loaded strictly into the copy's ``network_def`` before it is placed, so a bundle MONAI Label cannot load
    is never produced.

    Args:
        bundle_root: the bundle source, e.g. ``bundles/rd_busi``.
        output_dir: the training run's ``output_dir``.
        dest: the new bundle folder (created or updated in place; its ``models/model.pt`` is replaced atomically).
        checkpoint: weights to serve; default ``<output_dir>/model.pt``.
        overrides: further top-level ids to set in both configs.

    Returns:
        ``dest`` as an absolute path.
    """
    import torch
    from monai.bundle import ConfigParser

    bundle_root, output_dir, dest = (os.path.abspath(os.fspath(p)) for p in (bundle_root, output_dir, dest))
    checkpoint = os.fspath(checkpoint) if checkpoint else os.path.join(output_dir, "model.pt")
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"No trained student at {checkpoint!r}: train the bundle first (it writes model.pt).")
    executed = _read_json(os.path.join(output_dir, "executed_config.json"))
    values = {k: executed[k] for k in SERVED_KEYS if k in executed}
    values.update(overrides or {})

    os.makedirs(os.path.join(dest, "models"), exist_ok=True)
    src_configs = os.path.join(bundle_root, "configs")
    dst_configs = os.path.join(dest, "configs")
    shutil.copytree(src_configs, dst_configs, dirs_exist_ok=True)
    for extra in ("docs", "LICENSE"):
        src = os.path.join(bundle_root, extra)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, extra), dirs_exist_ok=True)
        elif os.path.isfile(src):
            shutil.copy2(src, os.path.join(dest, extra))
    for name in ("inference.json", "train.json"):
        path = os.path.join(dst_configs, name)
        if os.path.isfile(path):
            config = _read_json(path)
            config.update({k: v for k, v in values.items() if k in config})
            if "training_config" in config:  # the packaged bundle carries its training run's settings
                config["training_config"] = remembered_settings(executed)
            atomic_write_json(path, config)

    parser = ConfigParser()
    parser.read_config(os.path.join(dst_configs, "inference.json"))
    parser["bundle_root"] = dest
    network = parser.get_parsed_content("network_def", instantiate=True)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise RuntimeError(
            f"{checkpoint!r} does not fit the bundle's network_def ({values.get('student', '?')} student): {e}"
        ) from e
    tmp = os.path.join(dest, "models", ".model.pt.tmp")
    shutil.copyfile(checkpoint, tmp)
    os.replace(tmp, os.path.join(dest, "models", "model.pt"))
    # what apps/monailabel serves: the ONNX student + the run's preprocessing, loadable without monai_rd
    export_run_serving(output_dir, os.path.join(dest, SERVING_DIR), checkpoint)
    return dest


def read_class_label(path: str | os.PathLike, class_names: Sequence[str]) -> int:
    """The class index stored in a MONAI Label datastore label file for a classification image.

    The file holds one class, as its name (``malignant``, case-insensitive) or its index (``1``), in plain
    text or as JSON (``{"label": "malignant"}`` / ``{"label": 1}``).

    Raises:
        ValueError: naming the file, when it holds no known class.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    value: object = text
    if text.startswith("{"):
        value = json.loads(text).get("label")
    names = [c.lower() for c in class_names]
    candidate = str(value).strip()
    if candidate.lower() in names:
        return names.index(candidate.lower())
    if candidate.isdigit() and int(candidate) < len(names):
        return int(candidate)
    raise ValueError(f"Label file {path!r} holds {candidate!r}, which is none of the classes {list(class_names)}.")


def classification_datalist(items: Sequence[Mapping], class_names: Sequence[str]) -> list[dict]:
    """``[{"image", "label": class index}]`` from datastore items ``{"image": path, "label": label file}``.

    Items without a label file are left out (they are unlabelled, not an error); an unreadable label is an error.
    """
    out = []
    for item in items:
        label = item.get("label")
        if not label:
            continue
        out.append({"image": item["image"], "label": read_class_label(label, class_names)})
    return out

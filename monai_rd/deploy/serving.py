"""Write a serving folder: the ONNX student + the bundle's own evaluation preprocessing, loader included,
+ class names.

The folder is what MLflow (:mod:`monai_rd.deploy.mlflow_pyfunc`), MONAI Label (``apps/monailabel``) and
MONAI Deploy (``apps/monai_deploy``) serve. It needs no ``monai_rd`` installation: its ``code/`` carries
``rd_runtime.py`` (a copy of :mod:`monai_rd.deploy.runtime`) and the ``monai_rd`` source that the pickled
preprocessing refers to (the readers of ``monai_rd.data.readers``, ``monai_rd.transforms``, ``monai_rd.utils``),
so a served image is decoded by the training reader's own code. Loading it needs the public packages of
:data:`SERVING_REQUIREMENTS`.
"""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import tempfile
from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.transforms import Compose, LoadImage, LoadImaged, MapTransform

import monai_rd
from monai_rd.deploy import runtime
from monai_rd.deploy.export import RUNNERS, ParityError, parity_difference, to_onnx
from monai_rd.utils import atomic_write_json

__all__ = [
    "SERVING_REQUIREMENTS",
    "serving_requirements",
    "serving_transforms",
    "loader_steps",
    "export_serving",
    "export_run_serving",
    "ACTIVATIONS",
]

ACTIVATIONS = ("softmax", "sigmoid")
# distribution name -> import name; what loading a serving folder imports (see runtime.py and the transforms)
SERVING_REQUIREMENTS = {
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "numpy": "numpy",
    "pillow": "PIL",
    "pydicom": "pydicom",
    "monai": "monai",
    "opencv-python-headless": "cv2",
    "scipy": "scipy",
    # what monai_rd.data.readers decodes with: NIfTI, compressed DICOM (pydicom's plugins, GDCM as fallback)
    "nibabel": "nibabel",
    "pylibjpeg": "pylibjpeg",
    "pylibjpeg-libjpeg": "libjpeg",
    "pylibjpeg-openjpeg": "openjpeg",
    "pylibjpeg-rle": "rle",
    "simpleitk": "SimpleITK",
}
# what the folder's code/ carries of monai_rd (the pickled loader and transforms import only these), as copied
_SHIPPED = ("__init__.py", "utils", "transforms", os.path.join("data", "readers"), os.path.join("data", "errors.py"))
# monai_rd/data/__init__.py imports all of monai_rd.data: the folder's monai_rd.data is the readers and their errors
_DATA_INIT = (
    '"""monai_rd.data as a serving folder carries it: the readers (``monai_rd.data.readers``) and the error type they '
    'raise (``monai_rd.data.errors``)."""\n'
)


def serving_requirements() -> list[str]:
    """pip requirements of a serving folder, torch and MONAI pinned to the versions that wrote it."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in SERVING_REQUIREMENTS:
        try:
            v = version(dist).split("+")[0]
        except PackageNotFoundError:
            v = None
        out.append(f"{dist}=={v}" if v and dist in ("torch", "monai") else (f"{dist}>={v}" if v else dist))
    return out


def _flatten(transforms) -> list:
    items = transforms.transforms if isinstance(transforms, Compose) else transforms
    out = []
    for t in items:
        out.extend(_flatten(t) if isinstance(t, Compose) else [t])
    return out


def serving_transforms(preprocessing: Compose | Sequence, key: str = "image") -> list:
    """The bundle's evaluation ``preprocessing`` as the runtime applies it to one image file.

    Nested ``Compose`` are flattened; every dictionary transform is copied and restricted to ``key``
    (``EnsureTyped(keys=["image", "label"])`` becomes ``keys=["image"]``); a dictionary transform that does not
    touch ``key`` is dropped. The loader (``LoadImaged``, with the bundle's reader) is kept: the runtime reads
    files with it.

    Raises:
        ValueError: a random transform is present (evaluation preprocessing must be deterministic), or no
            ``LoadImaged`` of ``key`` (the served model reads files with the bundle's own loader).
    """
    from monai.transforms import Randomizable

    out = []
    for t in _flatten(preprocessing):
        if isinstance(t, Randomizable):
            raise ValueError(
                f"{type(t).__name__} is random; a served model needs the bundle's deterministic "
                "evaluation preprocessing (validate::preprocessing), not the training one."
            )
        if isinstance(t, LoadImage):
            raise ValueError("The preprocessing loads with LoadImage; a served model needs LoadImaged (keyed).")
        if isinstance(t, MapTransform):
            if key not in t.keys:
                continue
            t = copy.deepcopy(t)
            t.keys = (key,)
        out.append(t)
    loader_steps(out)
    return out


def loader_steps(transforms: Sequence) -> int:
    """How many of ``transforms`` (:func:`serving_transforms`) read the file: up to and including the LoadImaged."""
    for i, t in enumerate(transforms):
        if isinstance(t, LoadImaged):
            return i + 1
    raise ValueError(
        "The preprocessing has no LoadImaged of 'image': a served model reads image files with the bundle's own "
        "loader and reader (validate::preprocessing with its loader)."
    )


def _copy_code(dest: str) -> None:
    code = os.path.join(dest, runtime.CODE_DIR)
    os.makedirs(os.path.join(code, "monai_rd"))
    shutil.copyfile(runtime.__file__, os.path.join(code, "rd_runtime.py"))
    src = os.path.dirname(monai_rd.__file__)
    os.makedirs(os.path.join(code, "monai_rd", "data"))
    with open(os.path.join(code, "monai_rd", "data", "__init__.py"), "w", encoding="utf-8") as f:
        f.write(_DATA_INIT)
    for name in _SHIPPED:
        path = os.path.join(src, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(code, "monai_rd", name), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(path, os.path.join(code, "monai_rd", name))


def export_serving(
    model: nn.Module,
    preprocessing: Compose | Sequence,
    class_names: Sequence[str],
    image_size: int,
    dest: str | os.PathLike,
    activation: str = "softmax",
    tolerance: float = 1e-4,
    extra_meta: dict | None = None,
) -> str:
    """Write the serving folder ``dest`` (replaced atomically) for the deployable student ``model``.

    Args:
        model: ``h(S(x))``, ``[B, 3, image_size, image_size]`` in [0, 1] -> logits ``[B, len(class_names)]``.
        preprocessing: the bundle's evaluation preprocessing (``validate::preprocessing``); see
            :func:`serving_transforms`.
        class_names: one name per output.
        activation: ``"softmax"`` (single-label) or ``"sigmoid"`` (multi-label).
        tolerance: the largest allowed ``|onnxruntime - eager|`` of the logits on load-back (times the largest
            logit where that exceeds 1).
        extra_meta: more JSON-able entries for ``serving.json`` (teacher, student, bundle name...).

    Returns:
        the absolute path of ``dest``.

    Raises:
        ValueError: bad activation, or ``class_names`` that do not match the model's outputs.
        ParityError: the written ONNX model, run by onnxruntime, differs from the eager model.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
    dest = os.path.abspath(os.fspath(dest))
    model = copy.deepcopy(model).float().cpu().eval()
    x = torch.rand(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        n_out = model(x).shape[1]
    if n_out != len(class_names):
        raise ValueError(
            f"The model has {n_out} outputs but {len(class_names)} class names were given: {list(class_names)}."
        )
    transforms = serving_transforms(preprocessing)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp_serving_")
    try:
        path = to_onnx(model, os.path.join(tmp, runtime.MODEL_FILE), x)
        diff, scale = parity_difference(model, RUNNERS["onnx"](path), [x, x[:1]])
        if not diff < tolerance * scale:
            raise ParityError(
                f"The ONNX student (onnxruntime) differs from eager by {diff:.3e} "
                f"(tolerance {tolerance:g} x max(1, max |logit|) = {tolerance * scale:.3g})."
            )
        with open(os.path.join(tmp, runtime.PREPROCESSING_FILE), "wb") as f:
            pickle.dump(transforms, f)
        _copy_code(tmp)
        meta = {
            "format_version": runtime.FORMAT_VERSION,
            "class_names": [str(c) for c in class_names],
            "image_size": int(image_size),
            "activation": activation,
            "input": "[B, 3, S, S] float32 in [0, 1] after preprocessing; logits [B, C] out",
            "preprocessing": [type(t).__name__ for t in transforms],
            "loader_steps": loader_steps(transforms),
            "onnx_max_abs_diff": diff,
            "requirements": serving_requirements(),
            **(extra_meta or {}),
        }
        atomic_write_json(os.path.join(tmp, runtime.META_FILE), meta)
        if os.path.isdir(dest):
            old = dest + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _registry_handler_index(handlers: Sequence, config_file: str) -> int:
    for i, h in enumerate(handlers):
        if isinstance(h, dict) and str(h.get("_target_", "")).endswith("MLflowModelRegistryHandler"):
            if "serving" not in h:
                raise KeyError(
                    f"{config_file!r}: the MLflowModelRegistryHandler has no 'serving' entry; this run "
                    "predates servable models: retrain with the current bundle."
                )
            return i
    raise KeyError(
        f"{config_file!r} has no MLflowModelRegistryHandler in train::handlers, so no serving spec "
        "(preprocessing, class names) to export."
    )


def export_run_serving(
    output_dir: str | os.PathLike, dest: str | os.PathLike, checkpoint: str | os.PathLike | None = None
) -> str:
    """The serving folder of a finished training run, from its ``output_dir`` alone.

    Reads ``<output_dir>/executed_config.json`` (the run's settings): the ``serving`` entry of its registry
    handler gives the evaluation preprocessing, class names, image size and activation, exactly what the run
    registers in MLflow; the class names of ``<output_dir>/datalist.json`` (``classes``) take precedence where the
    datalist has them. Loads ``checkpoint`` (default ``<output_dir>/model.pt``) strictly into the run's student.
    """
    from monai.bundle import ConfigParser

    from monai_rd.deploy.export import load_student

    output_dir = os.path.abspath(os.fspath(output_dir))
    config_file = os.path.join(output_dir, "executed_config.json")
    checkpoint = os.fspath(checkpoint) if checkpoint else os.path.join(output_dir, "model.pt")
    for path in (config_file, checkpoint):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path!r} not found: {output_dir!r} is not the output_dir of a finished run.")
    parser = ConfigParser()
    parser.read_config(config_file)
    parser["output_dir"] = output_dir
    index = _registry_handler_index(parser["train"]["handlers"], config_file)
    spec = f"train::handlers::{index}::serving"
    datalist = os.path.join(output_dir, "datalist.json")
    if os.path.isfile(datalist):
        import json

        with open(datalist, encoding="utf-8") as f:
            classes = json.load(f).get("classes")
        if classes:
            parser[f"{spec}::class_names"] = list(classes)
    get = parser.get_parsed_content
    class_names = get(f"{spec}::class_names")
    model = load_student(checkpoint, get("student"), num_classes=len(class_names))
    raw = parser[spec]
    return export_serving(
        model,
        get(f"{spec}::preprocessing"),
        class_names,
        int(get(f"{spec}::image_size")),
        dest,
        activation=raw.get("activation", "softmax"),
        extra_meta={"student": str(get("student")), "teacher": str(get("teacher")), "run_output_dir": output_dir},
    )

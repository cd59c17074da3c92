"""The registered student as an MLflow pyfunc model that ``mlflow models serve`` can build and serve.

What is logged: the serving folder (:func:`monai_rd.deploy.export_serving`: ONNX student run by onnxruntime, the
bundle's evaluation preprocessing with its loader and reader, class names) as the artifact ``serving``;
``pyfunc_model.py`` as a model from code; ``rd_runtime.py`` and the ``monai_rd`` source the preprocessing refers to
(the training readers of ``monai_rd.data.readers``, ``monai_rd.transforms``) through ``code_paths``; pip
requirements that all come from PyPI (:func:`~monai_rd.deploy.serving.serving_requirements`, never ``monai-rd``).
Served with::

    mlflow models serve -m "models:/<name>@champion" --env-manager local
    curl -H 'Content-Type: application/json' -d '{"inputs": ["<base64 of a DICOM, NIfTI, PNG or JPEG file>"]}' \
        host:port/invocations
    # {"predictions": [{"label": "benign", "probabilities": {"benign": 0.7, ...}}]}

The model carries an MLflow signature (:func:`serving_signature`: one string column ``image`` of base64 image
files) and an input example (:func:`input_example`), so MLflow's scoring server checks requests: over HTTP
``{"inputs": [...]}``, ``{"inputs": {"image": [...]}}``, ``dataframe_split`` and ``instances`` all work; in Python,
``predict({"image": [...]})`` or a DataFrame with an ``image`` column. Decoded pixel arrays are refused (the model
decodes files with the training reader; see :mod:`monai_rd.deploy.runtime`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn as nn

from monai_rd.deploy import runtime
from monai_rd.deploy.model_card import read_card, render_card, run_values
from monai_rd.deploy.serving import export_serving, serving_requirements

__all__ = ["PyfuncServing", "PYFUNC_SCRIPT", "serving_signature", "input_example"]

PYFUNC_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyfunc_model.py")


def serving_signature():
    """The registered model's MLflow signature: one string column ``image``, a base64-encoded image file per row
    (DICOM, NIfTI, PNG, JPEG, BMP, TIFF); the output is one ``{"label", "probabilities"}`` per row (no schema)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", runtime.IMAGE_KEY)]))


def input_example(image_size: int) -> dict[str, list[str]]:
    """A valid request for :func:`serving_signature`: ``{"image": [<base64 of a grey PNG, image_size px>]}``."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    side = int(image_size)
    ramp = (np.add.outer(np.arange(side), np.arange(side)) * (255.0 / max(1, 2 * side - 2))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    return {runtime.IMAGE_KEY: [base64.b64encode(buf.getvalue()).decode("ascii")]}


class PyfuncServing:
    """How :class:`~monai_rd.handlers.MLflowModelRegistryHandler` logs the student: as a servable pyfunc.

    Args:
        preprocessing: the bundle's evaluation preprocessing (``@validate::preprocessing``).
        class_names: one name per output of the student.
        image_size: side of the student's square input.
        activation: ``"softmax"`` (single-label) or ``"sigmoid"`` (multi-label).
        card: path of the bundle's model card template (``docs/README.md``); rendered with the run's values and
            metrics, logged as ``model_card.md`` in the run and as the model version's description.
        card_values: values for the card's placeholders (teacher, student, dataset...).
        executed_config: the run's ``executed_config.json``: its resolved values fill the card's placeholders and
            its training recipe (``{{recipe}}``), read when the card is rendered (``card_values`` take precedence).
    """

    def __init__(
        self,
        preprocessing: Any,
        class_names: Sequence[str],
        image_size: int,
        activation: str = "softmax",
        card: str | os.PathLike | None = None,
        card_values: Mapping[str, Any] | None = None,
        executed_config: str | os.PathLike | None = None,
    ) -> None:
        self.preprocessing = preprocessing
        self.class_names = [str(c) for c in class_names]
        self.image_size = int(image_size)
        self.activation = activation
        self.card = os.fspath(card) if card is not None else None
        self.card_values = dict(card_values or {})
        self.executed_config = os.fspath(executed_config) if executed_config is not None else None
        if self.card is not None:
            read_card(self.card)  # fail at configuration time, not after training

    def log_model(self, model: nn.Module, name: str, registered_model_name: str | None = None):
        """Log ``model`` into the active MLflow run (and register it); returns MLflow's ``ModelInfo``."""
        import mlflow

        with tempfile.TemporaryDirectory(prefix="rd_serving_") as tmp:
            serving = export_serving(
                model,
                self.preprocessing,
                self.class_names,
                self.image_size,
                os.path.join(tmp, "serving"),
                activation=self.activation,
                extra_meta={k: str(v) for k, v in self.card_values.items()},
            )
            code = os.path.join(serving, runtime.CODE_DIR)
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=PYFUNC_SCRIPT,
                artifacts={"serving": serving},
                code_paths=[os.path.join(code, "rd_runtime.py"), os.path.join(code, "monai_rd")],
                pip_requirements=serving_requirements(),
                registered_model_name=registered_model_name,
                signature=serving_signature(),
                input_example=input_example(self.image_size),
            )

    def render_card(self, metrics: Mapping[str, float], **values: Any) -> str | None:
        """The model card filled with ``card_values``, ``values`` and ``metrics``; ``None`` without a card."""
        if self.card is None:
            return None
        recorded = run_values(self.executed_config) if self.executed_config is not None else {}
        return render_card(read_card(self.card), {**recorded, **self.card_values, **values}, metrics)

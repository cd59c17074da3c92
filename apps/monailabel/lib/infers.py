"""Inference task: the exported student (a serving folder) as a MONAI Label classification model.

Needs ``monailabel`` and the serving folder only (not ``monai_rd``): the folder's ``code/rd_runtime.py`` reads
the image with the training run's own loader and reader (shipped in the folder's ``code/``), applies its
evaluation preprocessing and runs the student. This venv pins pydicom 2.4 (monailabel's pydicom-seg), which the
training reader's DICOM decoding does not support: here DICOM goes through ``rd_runtime.decode_dicom``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

logger = logging.getLogger(__name__)


def load_runtime(serving_dir: str):
    """``rd_runtime`` from ``<serving_dir>/code`` (the copy the folder was written with)."""
    code = os.path.join(serving_dir, "code")
    if not os.path.isfile(os.path.join(code, "rd_runtime.py")):
        raise FileNotFoundError(
            f"{code!r} has no rd_runtime.py: {serving_dir!r} is not a serving folder. Package "
            "a trained run with: monai-rd label-bundle --output_dir <run> --dest <bundle folder>"
        )
    if code not in sys.path:
        sys.path.insert(0, code)
    return importlib.import_module("rd_runtime")


class RDServingInfer(InferTask):
    """Classify ``request["image"]`` (a file or a DICOM series folder) with the serving folder ``serving_dir``.

    The result JSON holds ``prediction: [{"idx", "label", "score"}]`` (one probability per class, in the model's
    class order) and ``label``, the predicted class (multi-label models: the classes with ``score >= 0.5``).
    """

    def __init__(self, serving_dir: str, description: str = "Student distilled by Reprogramming Distillation"):
        self.serving_dir = os.path.abspath(serving_dir)
        self.runtime = load_runtime(self.serving_dir)
        self.stamp = os.path.getmtime(os.path.join(self.serving_dir, "serving.json"))
        self.model = self.runtime.ServingModel(self.serving_dir)
        labels = {c: i for i, c in enumerate(self.model.class_names)}
        super().__init__(
            type=InferType.CLASSIFICATION,
            labels=labels,
            dimension=2,
            description=description,
            config={"image_size": self.model.image_size, "activation": self.model.activation},
        )

    def is_valid(self) -> bool:
        return True

    def _reload_if_retrained(self) -> None:
        stamp = os.path.getmtime(os.path.join(self.serving_dir, "serving.json"))
        if stamp != self.stamp:  # the RD trainer re-exported the folder
            self.model, self.stamp = self.runtime.ServingModel(self.serving_dir), stamp

    def __call__(self, request):
        self._reload_if_retrained()
        probs = self.model.predict_files([request["image"]])
        result = self.model.results(probs)[0]
        prediction = [
            {"idx": i, "label": c, "score": result["probabilities"][c]} for i, c in enumerate(self.model.class_names)
        ]
        return None, {"prediction": prediction, "label": result["label"]}

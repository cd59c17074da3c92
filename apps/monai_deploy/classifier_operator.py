"""MONAI Deploy operator: classify the selected DICOM series with an exported RD student (a serving folder)."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"


def find_serving_folder(model_path: str | os.PathLike) -> Path:
    """``model_path`` itself, or its one sub-folder holding ``serving.json`` (a MAP copies ``--models <folder>`` to
    ``/opt/holoscan/models/<folder name>``)."""
    path = Path(model_path)
    if (path / "serving.json").is_file():
        return path
    found = sorted(p.parent for p in path.glob("*/serving.json"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"No serving folder at {str(path)!r} (serving.json there or in one sub-folder; found "
            f"{[str(f) for f in found]})."
        )
    return found[0]


def load_runtime(serving_dir: str | os.PathLike):
    """``rd_runtime`` from ``<serving_dir>/code``: the folder carries its own runtime, no monai_rd needed."""
    code = os.path.join(os.fspath(serving_dir), "code")
    if not os.path.isfile(os.path.join(code, "rd_runtime.py")):
        raise FileNotFoundError(
            f"{code!r} has no rd_runtime.py: the model path {os.fspath(serving_dir)!r} must be a serving folder "
            "(monai-rd label-bundle writes one to <dest>/serving; monai_rd.deploy.export_run_serving writes one)."
        )
    if code not in sys.path:
        sys.path.insert(0, code)
    return importlib.import_module("rd_runtime")


class RDClassifierOperator(Operator):
    """Input ``study_selected_series_list`` (from ``DICOMSeriesSelectorOperator``); output ``result_text``.

    Of the first selected series, the middle slice along the slice normal (``rd_runtime.series_key``) is read by
    the training run's own loader and reader (shipped in the serving folder), preprocessed by its evaluation
    transforms and classified by the student. ``<output_folder>/result.json`` receives the class names, the
    probabilities, the predicted label, the SeriesInstanceUID and the slice used; ``result_text`` (for the DICOM SR
    writer) states the label and every probability.
    """

    def __init__(
        self, fragment: Fragment, *args, model_path: str | os.PathLike, output_folder: str | os.PathLike, **kwargs
    ):
        self.model_path = find_serving_folder(model_path)
        self.output_folder = Path(output_folder)
        self.runtime = load_runtime(self.model_path)
        self.model = self.runtime.ServingModel(self.model_path)
        self.input_name_series = "study_selected_series_list"
        self.output_name_text = "result_text"
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input(self.input_name_series)
        spec.output(self.output_name_text).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        selected = op_input.receive(self.input_name_series)
        series = next((s.series for study in selected or [] for s in study.selected_series), None)
        if series is None:
            raise ValueError("No DICOM series was selected from the input study folder; nothing to classify.")
        datasets = [sop.get_native_sop_instance() for sop in series.get_sop_instances()]
        ds = self.runtime.middle_slice([(self.runtime.series_key(d), d) for d in datasets])
        with tempfile.TemporaryDirectory(prefix="rd_deploy_") as tmp:  # the reader reads files
            path = os.path.join(tmp, "slice.dcm")
            ds.save_as(path)
            probs = self.model.predict_files([path])
        result = self.model.results(probs)[0]
        record = {
            "label": result["label"],
            "probabilities": result["probabilities"],
            "class_names": self.model.class_names,
            "series_instance_uid": str(series.SeriesInstanceUID),
            "sop_instance_uid": str(getattr(ds, "SOPInstanceUID", "")),
            "slices_in_series": len(datasets),
            "model": {k: self.model.meta.get(k) for k in ("student", "teacher", "image_size", "activation")},
        }
        self.output_folder.mkdir(parents=True, exist_ok=True)
        tmp = self.output_folder / (RESULT_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, self.output_folder / RESULT_FILE)
        probabilities = ", ".join(f"{c}: {p:.4f}" for c, p in result["probabilities"].items())
        op_output.emit(f"Predicted class: {result['label']}. Probabilities: {probabilities}.", self.output_name_text)

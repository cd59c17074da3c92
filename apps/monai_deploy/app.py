"""MONAI Deploy application: a DICOM study folder in, a distilled RD student, a JSON result and a DICOM SR out.

    python apps/monai_deploy/app.py -i <dicom folder> -o <output folder> -m <serving folder>
    python -m apps.monai_deploy -i ... -o ... -m ...            (from the repository root)

The model (``-m``) is a serving folder (ONNX student + the training run's preprocessing + class names;
``monai-rd label-bundle`` writes one to ``<dest>/serving``). Operators: ``DICOMDataLoaderOperator`` ->
``DICOMSeriesSelectorOperator`` (``SELECTION_RULES``: the first series with pixel data of a CT, MR, CR, DX, US or
MG modality) -> :class:`RDClassifierOperator` (``result.json``) -> ``DICOMTextSRWriterOperator`` (a DICOM SR with
the predicted class and every probability, study/patient modules copied from the input). Not for clinical use.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from monai.deploy.conditions import CountCondition
from monai.deploy.core import AppContext, Application
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator
from monai.deploy.operators.dicom_text_sr_writer_operator import DICOMTextSRWriterOperator, EquipmentInfo, ModelInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classifier_operator import RDClassifierOperator  # noqa: E402

SELECTION_RULES = """
{
    "selections": [
        {"name": "image series", "conditions": {"Modality": "(?i)^(CT|MR|CR|DX|US|MG|OT)$"}}
    ]
}
"""


class RDClassificationApp(Application):
    """Classify the selected series of a DICOM study with a student distilled by Reprogramming Distillation."""

    def compose(self):
        context: AppContext = Application.init_app_context(self.argv)
        input_path, output_path = Path(context.input_path), Path(context.output_path)
        model_path = Path(context.model_path)
        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=input_path, name="loader")
        selector = DICOMSeriesSelectorOperator(self, rules=SELECTION_RULES, name="selector")
        classifier = RDClassifierOperator(self, model_path=model_path, output_folder=output_path, name="classifier")
        meta = classifier.model.meta
        sr_writer = DICOMTextSRWriterOperator(
            self,
            copy_tags=True,
            output_folder=output_path,
            name="sr_writer",
            model_info=ModelInfo("monai_rd", f"RD student {meta.get('student', '')}".strip(), "1", ""),
            equipment_info=EquipmentInfo(manufacturer="monai_rd", manufacturer_model="RD classification"),
            custom_tags={"SeriesDescription": "RD classification - not for clinical use"},
        )
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, classifier, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(classifier, sr_writer, {("result_text", "text")})
        self.add_flow(selector, sr_writer, {("study_selected_series_list", "study_selected_series_list")})


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    RDClassificationApp().run()


if __name__ == "__main__":
    main()

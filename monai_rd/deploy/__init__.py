"""Deployment of the distilled student: export (TorchScript, ONNX), serving folders, the MLflow pyfunc model,
model cards, cost tables, MONAI Label packaging."""

from monai_rd.deploy.cost import ModelCost, cost_table, count_flops, count_parameters, model_cost
from monai_rd.deploy.export import ExportResult, ParityError, export_student, load_student
from monai_rd.deploy.label import SERVING_DIR, classification_datalist, prepare_label_bundle, read_class_label
from monai_rd.deploy.mlflow_pyfunc import PYFUNC_SCRIPT, PyfuncServing
from monai_rd.deploy.model_card import metrics_table, read_card, render_card
from monai_rd.deploy.serving import (
    SERVING_REQUIREMENTS,
    export_run_serving,
    export_serving,
    serving_requirements,
    serving_transforms,
)

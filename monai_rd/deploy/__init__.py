"""Deployment of the distilled student: export (TorchScript, ONNX), cost tables, MONAI Label packaging."""

from monai_rd.deploy.cost import ModelCost, cost_table, count_flops, count_parameters, model_cost
from monai_rd.deploy.export import ExportResult, ParityError, export_student, load_student
from monai_rd.deploy.label import classification_datalist, prepare_label_bundle, read_class_label

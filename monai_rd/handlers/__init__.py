"""Handlers: loss-weight schedules, the validation CKA monitor and output transforms for loggers."""

from .cka_monitor import CKAMonitor
from .loss_weight_schedule import LossWeightSchedule, WeightSchedule
from .utils import probs_and_class_indices, rd_loss_terms
from .prediction_writer import PredictionCSVWriter
from .multilabel_auc import MultiLabelAUC, multilabel_auc
from .mlflow_resilient import MLflowLink, ResilientMLFlowHandler, effective_tracking_uri
from .best_model_report import BestModelReport, find_run_id, predict_probs
from .mlflow_registry import MLflowModelRegistryHandler, assert_student_only
from .resume import (
    AtomicCheckpointSaver,
    BestMetricState,
    EpochSeed,
    RNGState,
    latest_checkpoint,
    resume_checkpoint,
    resume_objects,
)

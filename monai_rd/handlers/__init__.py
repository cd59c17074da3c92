"""Handlers: loss-weight schedules and the distillation gate, the validation CKA monitor and output transforms for loggers."""

from monai_rd.handlers.cka_monitor import CKAMonitor
from monai_rd.handlers.epoch_progress import EpochProgressLog
from monai_rd.handlers.loss_weight_schedule import LossWeightSchedule, WeightSchedule
from monai_rd.handlers.distillation_gate import DistillationGate
from monai_rd.handlers.utils import probs_and_class_indices, rd_loss_terms
from monai_rd.handlers.prediction_writer import PredictionCSVWriter
from monai_rd.handlers.multilabel_auc import MultiLabelAUC, multilabel_auc
from monai_rd.handlers.mlflow_resilient import MLflowLink, ResilientMLFlowHandler, effective_tracking_uri
from monai_rd.handlers.best_model_report import (
    BestModelReport,
    find_run_id,
    load_best,
    log_report_to_mlflow,
    predict_probs,
)
from monai_rd.handlers.test_report import BestModelTestReport
from monai_rd.handlers.mlflow_registry import MLflowModelRegistryHandler, assert_student_only
from monai_rd.handlers.resume import (
    AtomicCheckpointSaver,
    BestMetricState,
    CKAMemoryState,
    EpochSeed,
    NetworkState,
    RNGState,
    latest_checkpoint,
    resume_checkpoint,
    resume_objects,
)
from monai_rd.handlers.method_handlers import MethodHandlers
from monai_rd.handlers.stage1 import BestWeights, key_metric_score

"""The methods of the comparison (RD, its ablations, the student and teacher references, KD and PEFT+KD
baselines), each built by name from :data:`METHODS` into a network, a loss and an optional stage 1."""

from .adapters import LORA_TARGET_SUFFIXES, VisualPrompts, find_vit, lora_teacher, vpt_teacher
from .data import INDEX_KEY, with_indices
from .handlers import MethodHandlers
from .losses import MethodLoss, supervised_loss
from .networks import (
    DistillNet,
    FrozenBranch,
    LayerTaps,
    ReferenceNet,
    StudentNet,
    TeacherClassifier,
    TunedTeacher,
    default_feature_layer,
    pool_features,
)
from .registry import (
    DEPLOYABLES,
    FEATURE_KD_WEIGHTS,
    METHODS,
    TEACHERLESS_METHODS,
    Method,
    Stage,
    build_deployable,
    build_method,
    method_options,
    needs_teacher,
)

"""The methods of the comparison (RD, its ablations, the student and teacher references, KD and PEFT+KD
baselines) as *recipes*: which network, loss, handlers and optional stage 1 each method uses, built by name from :data:`METHODS` into a network, a loss and an optional stage 1."""

from monai_rd.methods.registry import (
    DEPLOYABLES,
    FEATURE_KD_WEIGHTS,
    METHODS,
    TEACHERLESS_METHODS,
    Method,
    Stage,
    build_deployable,
    deploys_student,
    build_method,
    method_options,
    needs_teacher,
)
from monai_rd.methods.dry_run import DryRunReport, dry_run_method, train_steps

"""The methods of the comparison (RD, its ablations, the student and teacher references, KD and PEFT+KD
baselines) as *recipes*: which network, loss, handlers and optional stage 1 each method uses, each registered once
in :data:`METHODS` with its metadata (:class:`MethodSpec`) and built by name into a network, a loss and an
optional stage 1."""

from monai_rd.methods.registry import (
    DEPLOYABLES,
    FEATURE_KD_WEIGHTS,
    METHODS,
    REFERENCE_LAYERS,
    TEACHERLESS_METHODS,
    Method,
    MethodContext,
    MethodSpec,
    Option,
    Stage,
    build_deployable,
    deploys_student,
    build_method,
    method_options,
    needs_teacher,
)
from monai_rd.methods.dry_run import DryRunReport, dry_run_method, train_steps

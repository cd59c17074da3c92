"""What the bundles call from their configs: locating a bundle, checking its overrides, recording its config,
reading back the training run's settings, and reporting errors and evaluations."""

from monai_rd.bundle.config_check import (
    PARAM_CHECKS,
    ConfigError,
    EmptyEpochError,
    check_bundle_run,
    check_cli_overrides,
    check_epochs_run,
    check_run_params,
    normalize_bool_ids,
    parse_bool,
    start_run,
)
from monai_rd.bundle.errors import install_error_report, report_error_last, root_error
from monai_rd.bundle.paths import (
    bundle_args,
    bundle_command,
    bundle_names,
    bundle_root,
    bundles_dir,
    copy_bundle,
    plain_values,
    read_datalist,
    write_executed_config,
    SplitNotFoundError,
)
from monai_rd.bundle.evaluation import write_evaluation_summary
from monai_rd.bundle.next_steps import (
    find_mlflow_run,
    inference_done_lines,
    report_inference_done,
    report_training_done,
    training_done_lines,
)
from monai_rd.bundle.training_record import (
    EXECUTED_CONFIG,
    REMEMBERED_IDS,
    RUN_METADATA,
    check_matches_training,
    read_training_config,
    remembered_settings,
    write_run_metadata,
)

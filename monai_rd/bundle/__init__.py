"""What the bundles call from their configs: locating a bundle, checking its overrides, recording its config."""

from monai_rd.bundle.config_check import PARAM_CHECKS, ConfigError, check_bundle_run, check_cli_overrides, check_run_params
from monai_rd.bundle.paths import bundle_root, bundles_dir, read_datalist, write_executed_config

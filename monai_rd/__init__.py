"""monai_rd: Reprogramming Distillation of frozen medical foundation models into small MONAI classifiers."""

__version__ = "0.1.0"

from . import bundle, data, engines, handlers, losses, methods, networks, transforms, utils  # noqa: E402,F401
from . import config_check  # noqa: E402,F401

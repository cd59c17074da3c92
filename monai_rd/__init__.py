"""monai_rd: Reprogramming Distillation of frozen medical foundation models into small MONAI classifiers.

Sub-packages mirror MONAI's taxonomy and are imported on first use (``monai_rd.networks``,
``monai_rd.losses``, ...), so that ``import monai_rd`` and the ``monai-rd`` command line stay fast: torch,
torchvision and MONAI are loaded only by the sub-package that needs them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

SUBPACKAGES = (
    "bundle",
    "cli",
    "data",
    "deploy",
    "engines",
    "experiments",
    "handlers",
    "losses",
    "methods",
    "metrics",
    "networks",
    "transforms",
    "utils",
    "visualize",
)

__all__ = ["__version__", *SUBPACKAGES]


def __getattr__(name: str):
    # PEP 562: bundle configs write ``$monai_rd.networks.RDNet(...)`` after ``import monai_rd``.
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

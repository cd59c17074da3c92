"""MONAI Label tasks of the RD app. Serving (``infers``) needs only monailabel and the serving folder; training
(``trainers``) needs ``monai_rd`` and is imported by ``main.py`` only when monai_rd is installed."""

from .infers import RDServingInfer, load_runtime

__all__ = ["RDServingInfer", "load_runtime"]

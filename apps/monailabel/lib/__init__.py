"""MONAI Label task classes serving and training a Reprogramming Distillation bundle."""

from .infers import RDClassificationInfer
from .trainers import RDTrainTask

__all__ = ["RDClassificationInfer", "RDTrainTask"]

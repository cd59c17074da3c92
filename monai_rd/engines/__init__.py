"""Engines: the RD co-training trainer and evaluator (MONAI workflows on Ignite)."""

from .rd_evaluator import RDEvaluator
from .rd_trainer import RDTrainer
from .utils import RDKeys

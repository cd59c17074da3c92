"""Engines: the RD co-training trainer and evaluator (MONAI workflows on Ignite)."""

from monai_rd.engines.rd_evaluator import RDEvaluator
from monai_rd.engines.rd_trainer import RDTrainer
from monai_rd.engines.utils import RDKeys

"""Losses: linear CKA, logit KD and the Reprogramming Distillation loss."""

from .cka import CKALoss, gather_across_ranks, linear_cka
from .kd import KDLoss
from .rd import RD_TERMS, RDLoss

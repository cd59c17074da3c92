"""Losses: linear CKA, logit KD and the Reprogramming Distillation loss."""

from .cka import CKALoss, linear_cka
from .kd import KDLoss
from .rd import RD_TERMS, RDLoss

"""Losses: linear CKA, logit KD, the Reprogramming Distillation loss and the baseline KD losses."""

from .cka import CKALoss, gather_across_ranks, linear_cka
from .kd import KDLoss
from .rd import RD_TERMS, RDLoss
from .at import ATLoss, attention_map
from .baselines import KD_LOSSES, build_kd_loss
from .crd import CRDLoss, nce_loss
from .hint import HintLoss
from .mgd import MGDLoss
from .norm import NORMLoss
from .semckd import SemCKDLoss
from .vid import VIDLoss

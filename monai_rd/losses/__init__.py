"""Losses: linear CKA, logit KD, the Reprogramming Distillation loss and the baseline KD losses."""

from monai_rd.losses.cka import CKALoss, gather_across_ranks, linear_cka
from monai_rd.losses.kd import KDLoss
from monai_rd.losses.rd import (
    DEFAULT_RD_SCHEDULE,
    RD_SCHEDULES,
    RD_TERMS,
    RDLoss,
    rd_default_weights,
    rd_schedule,
    supervised_loss,
)
from monai_rd.losses.at import ATLoss, attention_map
from monai_rd.losses.baselines import KD_LOSSES, build_kd_loss
from monai_rd.losses.crd import CRDLoss, nce_loss
from monai_rd.losses.hint import HintLoss
from monai_rd.losses.mgd import MGDLoss
from monai_rd.losses.norm import NORMLoss
from monai_rd.losses.semckd import SemCKDLoss
from monai_rd.losses.vid import LayerwiseVIDLoss, VIDLoss
from monai_rd.losses.method_loss import MethodLoss

"""Keys of the RD engines' iteration output."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["RDKeys", "batch_teacher_features"]


class RDKeys:
    """Names under which the RD engines put their results in ``engine.state.output``.

    Besides MONAI's ``image``/``label``/``pred``/``loss``: ``loss_<term>`` for each unweighted term,
    ``weight_<term>`` for its current weight, ``cka`` for the batch CKA, and ``f_T``/``f_S`` (features).
    """

    F_T = "f_T"
    F_S = "f_S"
    Z_T = "z_T"
    CKA = "cka"
    TEACHER_FEATURES = "teacher_features"
    TERM_PREFIX = "loss_"
    WEIGHT_PREFIX = "weight_"


def batch_teacher_features(engine: Any, batchdata: Any) -> torch.Tensor | None:
    """The precomputed teacher features a batch carries (feature cache), on the engine's device, else None."""
    if isinstance(batchdata, dict) and RDKeys.TEACHER_FEATURES in batchdata:
        return batchdata[RDKeys.TEACHER_FEATURES].to(engine.state.device, non_blocking=engine.non_blocking)
    return None

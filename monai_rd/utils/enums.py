"""Key names shared across layers: defined once here, re-exported where they are used (``monai_rd.engines``)."""

from __future__ import annotations

__all__ = ["RDKeys"]


class RDKeys:
    """Names of the RD data: batch keys the datasets write and the engines read, and the keys the RD engines
    put in ``engine.state.output``.

    Besides MONAI's ``image``/``label``/``pred``/``loss``: ``loss_<term>`` for each unweighted term,
    ``weight_<term>`` for its current weight, ``cka`` for the batch CKA, and ``f_T``/``f_S`` (features).
    Batch keys: ``teacher_features`` (``[B, d_T]`` precomputed by the feature cache) and ``index`` (the
    sample's position in its datalist, for losses with per-sample state).
    """

    F_T = "f_T"
    F_S = "f_S"
    Z_T = "z_T"
    CKA = "cka"
    TEACHER_FEATURES = "teacher_features"
    INDEX = "index"
    TERM_PREFIX = "loss_"
    WEIGHT_PREFIX = "weight_"

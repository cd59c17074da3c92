"""Keys of the RD engines' iteration output."""

from __future__ import annotations

__all__ = ["RDKeys"]


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

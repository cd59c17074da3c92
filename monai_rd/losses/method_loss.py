"""The loss of the comparison methods: supervised CE (or BCE) of the student plus weighted distillation terms."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.losses.cka import linear_cka
from monai_rd.losses.kd import KDLoss
from monai_rd.losses.rd import supervised_loss

__all__ = ["MethodLoss", "supervised_loss"]


class MethodLoss(nn.Module):
    """``L = w_ce CE(z_S, y) + w_kd KD(z_S, z_T) + w_cka (1 - CKA(f_T, f_S)) + w_f feature_loss(feat_S, feat_T)``.

    Only the terms named in ``weights`` are computed (the RD trainer logs each as ``loss_<term>``); the weights
    live in ``self.weights`` so :class:`monai_rd.handlers.LossWeightSchedule` can schedule them.

    Args:
        weights: initial weights; keys among ``ce_student``, ``kd``, ``cka`` and ``feature_term``.
        temperature: ``tau`` of the KD term.
        multi_label: BCE and sigmoid KD (ChestX-ray14).
        feature_loss: a baseline loss of :data:`monai_rd.losses.KD_LOSSES` (its parameters are trained).
        feature_term: the name of its term (the method name, e.g. ``"hint"``).
        feature_inputs: ``"layers"`` (tapped maps/tokens ``feat_S``/``feat_T``) or ``"pooled"`` (``f_S``/``f_T``).
        needs_index: the feature loss also takes the batch's dataset indices (CRD); they are set in ``self.index``
            before each iteration by :class:`monai_rd.handlers.MethodHandlers`.
        logit_standardisation: ``s``: CE and KD read ``s * layer_norm(z)`` (each sample's logits standardised over
            the classes, no affine, eps 1e-7) instead of ``z``, as NORM's training loop (OSVAI/NORM ``helper/loops.py``,
            ``ceta = 2.5``); None: the logits as they are. Order-preserving, so predictions are unchanged.

    Inputs: the network's dict (``z_S``, ``z_T``, ``f_S``, ``f_T``, ``feat_S``, ``feat_T``) and the target.
    Returns ``{"loss": total, <term>: unweighted value, ...}``.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        temperature: float = 4.0,
        multi_label: bool = False,
        feature_loss: nn.Module | None = None,
        feature_term: str | None = None,
        feature_inputs: str = "layers",
        needs_index: bool = False,
        logit_standardisation: float | None = None,
    ) -> None:
        super().__init__()
        if feature_inputs not in ("layers", "pooled"):
            raise ValueError(f"feature_inputs must be 'layers' or 'pooled', got {feature_inputs!r}.")
        known = {"ce_student", "kd", "cka"} | ({feature_term} if feature_loss is not None else set())
        unknown = sorted(set(weights) - known)
        if unknown:
            raise KeyError(f"MethodLoss has no terms {unknown}; it has {sorted(known)}.")
        self.weights: dict[str, float] = {k: float(v) for k, v in weights.items()}
        self.multi_label = multi_label
        self.kd_loss = KDLoss(temperature=temperature, multi_label=multi_label)
        self.feature_loss = feature_loss
        self.feature_term = feature_term
        self.feature_inputs = feature_inputs
        self.needs_index = needs_index
        self.index: torch.Tensor | None = None
        self.logit_standardisation = logit_standardisation

    @property
    def logit_standardisation(self) -> float | None:
        return self._logit_standardisation

    @logit_standardisation.setter
    def logit_standardisation(self, scale: float | None) -> None:
        if scale is not None and not scale > 0:
            raise ValueError(
                f"logit_standardisation scales standardised logits and must be > 0 (or None), got {scale}."
            )
        self._logit_standardisation = None if scale is None else float(scale)

    def _logits(self, z: torch.Tensor) -> torch.Tensor:
        if self.logit_standardisation is None:
            return z
        return F.layer_norm(z, z.shape[-1:], None, None, 1e-7) * self.logit_standardisation

    def _feature_term(self, outputs: Mapping) -> torch.Tensor:
        if self.feature_inputs == "pooled":
            s, t = outputs["f_S"], outputs["f_T"].detach()
        else:
            s, t = outputs["feat_S"], outputs["feat_T"]
            s, t = (s[0], t[0]) if len(s) == 1 and len(t) == 1 else (s, t)
        if not self.needs_index:
            return self.feature_loss(s, t)  # type: ignore[misc]
        if self.index is None:
            raise RuntimeError(
                f"{self.feature_term} needs the dataset index of every sample: add them to the training data "
                "(monai_rd.data.with_indices) and attach monai_rd.handlers.MethodHandlers to the trainer."
            )
        return self.feature_loss(s, t, self.index.to(s.device))  # type: ignore[misc]

    def forward(self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if "ce_student" in self.weights:
            terms["ce_student"] = supervised_loss(self._logits(outputs["z_S"]), target, self.multi_label)
        if "kd" in self.weights:
            terms["kd"] = self.kd_loss(self._logits(outputs["z_S"]), self._logits(outputs["z_T"].detach()))
        if "cka" in self.weights:
            terms["cka"] = 1.0 - linear_cka(outputs["f_T"].detach().float(), outputs["f_S"].float())
        if self.feature_loss is not None:
            terms[self.feature_term] = self._feature_term(outputs)  # type: ignore[index]
        total = sum(self.weights[name] * value for name, value in terms.items())
        return {"loss": total, **terms}

"""Evaluation of an RDNet: scores the student, keeps both branches' features for the CKA monitor."""

from __future__ import annotations

import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

from monai_rd.engines.utils import RDKeys, prepare_rd_batch

__all__ = ["RDEvaluator"]


class RDEvaluator(SupervisedEvaluator):
    """A MONAI ``SupervisedEvaluator`` for :class:`monai_rd.networks.RDNet`.

    ``pred`` is the student's logits ``z_S`` ``[B, C]`` (the deployed model), so MONAI post-processing and
    metrics report the student. The output also carries ``z_T`` and the features ``f_T``, ``f_S``
    ``[B, d_S]`` for :class:`monai_rd.handlers.CKAMonitor`. Takes every argument of SupervisedEvaluator.
    """

    def _iteration(self, engine: RDEvaluator, batchdata: dict[str, torch.Tensor]) -> dict:
        inputs, targets, teacher_features = prepare_rd_batch(engine, batchdata)
        with engine.mode(engine.network):
            with torch.autocast(torch.device(engine.state.device).type, enabled=engine.amp, **engine.amp_kwargs):
                outputs = engine.inferer(inputs, engine.network, teacher_features=teacher_features)
        engine.state.output[Keys.PRED] = outputs["z_S"]
        engine.state.output[RDKeys.Z_T] = outputs["z_T"]
        engine.state.output[RDKeys.F_T] = outputs["f_T"]
        engine.state.output[RDKeys.F_S] = outputs["f_S"]
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

"""The co-training trainer of Reprogramming Distillation, a MONAI ``SupervisedTrainer``."""

from __future__ import annotations

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

from monai_rd.engines.utils import RDKeys, prepare_rd_batch

__all__ = ["RDTrainer"]


class RDTrainer(SupervisedTrainer):
    """One optimisation step of RD per iteration, on an :class:`monai_rd.networks.RDNet`.

    It takes every argument of :class:`monai.engines.SupervisedTrainer`; ``network`` must return the RD
    dict (``f_T, f_S, z_T, z_S``) and ``loss_function`` must be an :class:`monai_rd.losses.RDLoss`
    (a dict of terms whose ``"loss"`` is the total, and a ``weights`` dict).

    The iteration output holds ``image``, ``label``, ``pred`` (the student's logits ``z_S`` ``[B, C]``, what
    is deployed, so MONAI post-processing and metrics score the student), ``loss`` (the total), each
    unweighted term as ``loss_<term>``, each weight as ``weight_<term>`` and the batch ``cka``. It fires
    ``FORWARD_COMPLETED``, ``LOSS_COMPLETED``, ``BACKWARD_COMPLETED`` and ``MODEL_COMPLETED`` like MONAI's
    own trainer. A non-finite loss term stops training with ``FloatingPointError`` naming the term and
    iteration, before any weight is updated. When a batch carries precomputed teacher features under ``teacher_features``, they
    replace the teacher's forward pass.
    """

    @staticmethod
    def _check_finite(engine: RDTrainer, terms: dict[str, torch.Tensor]) -> None:
        """Stop before a NaN/Inf reaches the weights, naming the term and the iteration.

        Nothing has been stepped yet, so the networks (and any checkpoint saved so far) stay the last good ones.
        """
        # the individual terms first, so the message names the culprit rather than the total
        for name, value in sorted(terms.items(), key=lambda kv: kv[0] == "loss"):
            if not torch.isfinite(value).all():
                raise FloatingPointError(
                    f"RD loss term '{name}' is {float(value.detach())} at epoch {engine.state.epoch}, iteration "
                    f"{engine.state.iteration}: training stopped before the update, so the weights and the last "
                    "saved checkpoint are the last good ones. Lower the learning rate, check the input "
                    "intensities, or enable gradient clipping."
                )

    def _iteration(self, engine: RDTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        inputs, targets, teacher_features = prepare_rd_batch(engine, batchdata)

        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast(torch.device(engine.state.device).type, enabled=engine.amp, **engine.amp_kwargs):
            outputs = engine.inferer(inputs, engine.network, teacher_features=teacher_features)
            engine.state.output[Keys.PRED] = outputs["z_S"]
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_function(outputs, targets)
        self._check_finite(engine, terms)
        loss = terms["loss"]
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)

        if engine.amp and engine.scaler is not None:
            engine.scaler.scale(loss).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            loss.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.optimizer.step()

        # scalars for handlers and MLflow: detached Python floats, replicated by MONAI's decollation
        for name, value in terms.items():
            if name == "loss":
                continue
            key = RDKeys.CKA if name == "cka_value" else RDKeys.TERM_PREFIX + name
            engine.state.output[key] = float(value.detach())
        for name, weight in engine.loss_function.weights.items():
            engine.state.output[RDKeys.WEIGHT_PREFIX + name] = float(weight)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

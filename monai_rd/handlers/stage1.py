"""Stage 1 on equal terms: the teacher-side classifier of a two-stage method is validated every epoch, stopped
when its validation score stops improving (within a stated epoch budget), and restored to its best epoch."""

from __future__ import annotations

import copy

import torch.nn as nn
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["BestWeights", "key_metric_score"]


def key_metric_score(engine) -> float:
    """The evaluator's key metric (``engine.state.key_metric_name``), for ``EarlyStopHandler``'s ``score_function``."""
    return float(engine.state.metrics[engine.state.key_metric_name])


class BestWeights:
    """Keep the trainable state of ``module`` at the best epoch of an evaluator and put it back when ``trainer``
    completes (early stop or budget), so the distillation stage reads the best stage-1 classifier, not the last.

    The best epoch is MONAI's (``engine.state.best_metric_epoch``, the evaluator's key metric). Under DDP the
    metrics are gathered over ranks, so every rank keeps and restores the same epoch.

    Args:
        module: the stage-1 network (its parameters with ``requires_grad`` and its buffers are kept).
        trainer: the stage-1 trainer.
    """

    def __init__(self, module: nn.Module, trainer) -> None:
        self.module = getattr(module, "module", module)
        self.trainer = trainer
        self.best: dict | None = None
        self.best_epoch = 0

    def attach(self, evaluator) -> None:
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._keep)
        self.trainer.add_event_handler(Events.COMPLETED, self._restore)

    def _trainable_state(self) -> dict:
        trainable = {n for n, p in self.module.named_parameters() if p.requires_grad}
        names = trainable | {n for n, _ in self.module.named_buffers()}
        return {k: v for k, v in self.module.state_dict().items() if k in names}

    def _keep(self, evaluator) -> None:
        if evaluator.state.best_metric_epoch == evaluator.state.epoch:
            self.best = copy.deepcopy(self._trainable_state())
            self.best_epoch = evaluator.state.epoch

    def _restore(self, trainer) -> None:
        if self.best is not None:
            self.module.load_state_dict(self.best, strict=False)
            trainer.logger.info(f"stage 1: restored the classifier of its best validation epoch {self.best_epoch}.")

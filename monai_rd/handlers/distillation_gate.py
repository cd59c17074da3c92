"""A gate on RD's distillation terms: KD and CKA act only while the teacher branch is at least as good as the student."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.handlers.utils import check_loss_terms, probs_and_class_indices, weighted_loss
from monai_rd.utils.enums import RDKeys

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["DistillationGate", "TEACHER_BRANCH_METRIC", "GATE_OPEN_METRIC"]

#: the trainer metrics the gate sets after each validation: the teacher branch's validation accuracy, and 1.0 / 0.0
#: for the gate open / closed over the epochs that follow
TEACHER_BRANCH_METRIC = "val_teacher_branch_accuracy"
GATE_OPEN_METRIC = "distillation_gate_open"

logger = logging.getLogger(__name__)


class DistillationGate:
    """Open or close RD's distillation terms after each validation, by which branch classifies better.

    On a task where the reprogrammed teacher branch ``h(g(T(x)))`` is worse than the student, KD and CKA pull the
    student towards a worse classifier (issue 29: RD lost to the student alone on clear targets). After every
    validation the gate compares the accuracy of the teacher branch (``z_T``) with the student's (``pred``) on the
    validation split: the gated terms keep their scheduled weight while ``teacher >= student - margin`` and are 0
    otherwise, until the next validation. The gate starts open. It multiplies what
    :class:`monai_rd.handlers.LossWeightSchedule` set, so attach it to the trainer after that handler. After each
    validation it sets the trainer's metrics :data:`TEACHER_BRANCH_METRIC` and :data:`GATE_OPEN_METRIC`, which the
    trainer's MLflow handler logs with the epoch.

    With no ``terms`` (a method that is not gated) it attaches nothing.

    Args:
        evaluator: the validation :class:`monai_rd.engines.RDEvaluator` (its output holds ``pred``, ``label`` and
            ``z_T`` per item).
        terms: the loss terms the gate switches (RD: ``("kd", "cka")``).
        margin: accuracy (fraction) the teacher branch may be below the student and still keep the gate open.
        loss_function: the loss whose ``weights`` to gate; default ``engine.loss_function``.
    """

    def __init__(self, evaluator: Engine, terms: Sequence[str] = (), margin: float = 0.0, loss_function=None) -> None:
        self.evaluator = evaluator
        self.terms = tuple(terms)
        self.margin = float(margin)
        self.loss_function = loss_function
        self.is_open = True
        #: one ``{"epoch", "teacher_accuracy", "student_accuracy", "open"}`` per validation, for reports and tests
        self.history: list[dict] = []
        self._counts = torch.zeros(3, dtype=torch.float64)  # teacher correct, student correct, seen

    @property
    def active(self) -> bool:
        return bool(self.terms)

    def attach(self, engine: Engine) -> None:
        if not self.active:
            return
        engine.add_event_handler(Events.STARTED, self._check_terms)
        engine.add_event_handler(Events.ITERATION_STARTED, self._apply)
        self.evaluator.add_event_handler(Events.EPOCH_STARTED, self._reset)
        self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, self._count)
        self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._decide, engine)

    def _check_terms(self, engine: Engine) -> None:
        loss = weighted_loss(engine, self.loss_function)
        check_loss_terms("DistillationGate", loss, self.terms)
        if getattr(loss, "multi_label", False):
            raise ValueError(
                "DistillationGate compares single-label accuracies; this loss is multi-label. Leave the gate off "
                "(--teacher_gate false, or the default auto) for multi-label bundles."
            )

    def _reset(self, _evaluator: Engine) -> None:
        self._counts.zero_()

    def _count(self, evaluator: Engine) -> None:
        output = evaluator.state.output
        items = output if isinstance(output, (list, tuple)) else [output]
        if not items or RDKeys.Z_T not in items[0]:
            raise KeyError(
                f"DistillationGate needs the teacher branch's logits ({RDKeys.Z_T!r}) in the validation output; "
                "validate with monai_rd.engines.RDEvaluator on a network that has a teacher branch (RD)."
            )
        pred, label = probs_and_class_indices(output)  # the student's [B, C] and the labels as indices [B]
        z_t = (
            output[RDKeys.Z_T]
            if isinstance(output, Mapping)
            else torch.stack([torch.as_tensor(i[RDKeys.Z_T]) for i in items])
        )
        label = label.cpu()
        self._counts[0] += float((z_t.detach().argmax(dim=1).cpu() == label).sum())
        self._counts[1] += float((pred.detach().argmax(dim=1).cpu() == label).sum())
        self._counts[2] += label.numel()

    def _decide(self, _evaluator: Engine, trainer: Engine) -> None:
        teacher, student, seen = idist.all_reduce(self._counts.clone()).tolist()  # the whole split under DDP
        if seen == 0:
            return
        teacher, student = teacher / seen, student / seen
        was_open, self.is_open = self.is_open, teacher >= student - self.margin
        self.history.append(
            {"epoch": trainer.state.epoch, "teacher_accuracy": teacher, "student_accuracy": student,
             "open": self.is_open}
        )  # fmt: skip
        # the trainer's epoch metrics, which its MLflow and Stats handlers log after validation: the run records what
        # the gate saw and did
        trainer.state.metrics[TEACHER_BRANCH_METRIC] = teacher
        trainer.state.metrics[GATE_OPEN_METRIC] = float(self.is_open)
        if self.is_open != was_open or len(self.history) == 1:
            logger.info(
                f"distillation gate (epoch {trainer.state.epoch}): teacher branch {100 * teacher:.1f} % vs student "
                f"{100 * student:.1f} % on validation: {', '.join(self.terms)} {'on' if self.is_open else 'off'}"
            )

    def _apply(self, engine: Engine) -> None:
        if not self.is_open:
            weights = weighted_loss(engine, self.loss_function).weights
            for term in self.terms:
                weights[term] = 0.0

    def state_dict(self) -> dict:
        """For resume checkpoints: a resumed run keeps the gate as the uninterrupted run had it."""
        return {"is_open": self.is_open, "history": list(self.history)}

    def load_state_dict(self, state: Mapping) -> None:
        self.is_open = bool(state["is_open"])
        self.history = list(state["history"])

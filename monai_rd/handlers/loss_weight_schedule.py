"""Schedules for the RD loss weights (constant or linear, per iteration or per epoch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.handlers.utils import check_loss_terms, weighted_loss
from monai_rd.losses.rd import DEFAULT_RD_SCHEDULE, rd_schedule

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["LossWeightSchedule", "WeightSchedule"]


class WeightSchedule:
    """One weight's course over training progress ``p`` in ``[0, 1]``.

    ``0`` while ``p < warmup``; then ``start`` rising to ``end`` (``linear``) or staying at ``start``
    (``constant``) over the rest of training, i.e. at ``q = (p - warmup) / (1 - warmup)``.

    Args:
        start: the value at the first step after the warm-up.
        end: the value at the last step (ignored by ``constant``).
        schedule: ``"constant"`` or ``"linear"``.
        warmup: fraction of training, in ``[0, 1)``, during which the weight is 0.
    """

    SCHEDULES = ("constant", "linear")

    def __init__(
        self, start: float = 1.0, end: float | None = None, schedule: str = "constant", warmup: float = 0.0
    ) -> None:
        if schedule not in self.SCHEDULES:
            raise ValueError(f"Unknown schedule {schedule!r}; choose one of {self.SCHEDULES}.")
        if not 0.0 <= float(warmup) < 1.0:
            raise ValueError(f"warmup is a fraction of training in [0, 1), got {warmup!r}.")
        self.start = float(start)
        self.end = float(start if end is None else end)
        self.schedule = schedule
        self.warmup = float(warmup)

    def __call__(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        if progress < self.warmup:
            return 0.0
        if self.schedule == "constant":
            return self.start
        q = (progress - self.warmup) / (1.0 - self.warmup)
        return self.start + (self.end - self.start) * q

    def __repr__(self) -> str:
        return f"WeightSchedule(start={self.start}, end={self.end}, schedule={self.schedule!r}, warmup={self.warmup})"


class LossWeightSchedule:
    """Set the weights of an :class:`monai_rd.losses.RDLoss` before every iteration.

    Progress runs from 0 at the first step to 1 at the last one, where a step is an iteration
    (``unit="iteration"``: ``(iteration - 1) / (max_iterations - 1)``) or an epoch (``unit="epoch"``:
    ``(epoch - 1) / (max_epochs - 1)``). Progress is a fraction of training, so a schedule means the same at
    any budget. The weights are a function of the engine's position alone, so a resumed run continues the
    schedule where it stopped.

    Args:
        weights: term name -> a number (constant), a :class:`WeightSchedule`, or a mapping of its
            arguments (``{"start": 1, "end": 0, "schedule": "linear", "warmup": 0.2}``); they override the
            named ``schedule`` term by term. Terms named nowhere keep their weight.
        unit: ``"iteration"`` or ``"epoch"``.
        loss_function: the loss whose ``weights`` to set; default ``engine.loss_function``.
        schedule: a name in :data:`monai_rd.losses.RD_SCHEDULES` (``"paper"``, ``"warmup"``), the base that ``weights``
            overrides; default: :data:`monai_rd.losses.DEFAULT_RD_SCHEDULE` when ``weights`` is None, else none (``weights``
            alone).
    """

    def __init__(
        self,
        weights: Mapping[str, float | WeightSchedule | Mapping] | None = None,
        unit: str = "iteration",
        loss_function=None,
        schedule: str | None = None,
    ) -> None:
        if unit not in ("iteration", "epoch"):
            raise ValueError(f"unit must be 'iteration' or 'epoch', got {unit!r}.")
        if schedule is None and weights is not None:
            base = {}  # explicit weights alone (the comparison methods have other terms than RD)
        else:
            base = rd_schedule(DEFAULT_RD_SCHEDULE if schedule is None else schedule)
        self.schedule_name = schedule
        weights = {**base, **(weights or {})}
        self.schedules: dict[str, WeightSchedule] = {}
        for name, spec in weights.items():
            if isinstance(spec, WeightSchedule):
                self.schedules[name] = spec
            elif isinstance(spec, Mapping):
                self.schedules[name] = WeightSchedule(**spec)
            else:
                self.schedules[name] = WeightSchedule(float(spec))
        self.unit = unit
        self.loss_function = loss_function

    def attach(self, engine: Engine) -> None:
        # handlers are attached before MONAI's trainer sets ``loss_function``: check it when the run starts
        engine.add_event_handler(Events.STARTED, self._check_terms)
        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def _check_terms(self, engine: Engine) -> None:
        check_loss_terms("LossWeightSchedule", weighted_loss(engine, self.loss_function), self.schedules)

    def progress(self, engine: Engine) -> float:
        """Training progress in ``[0, 1]`` of the current step."""
        if self.unit == "epoch":
            done, total = engine.state.epoch - 1, engine.state.max_epochs
        else:
            done, total = engine.state.iteration - 1, engine.state.max_epochs * engine.state.epoch_length
        return done / (total - 1) if total > 1 else 0.0

    def __call__(self, engine: Engine) -> None:
        p = self.progress(engine)
        weights = weighted_loss(engine, self.loss_function).weights
        for name, schedule in self.schedules.items():
            weights[name] = schedule(p)

"""Schedules for the RD loss weights (constant or linear, per iteration or per epoch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.losses.rd import rd_default_weights

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["LossWeightSchedule", "WeightSchedule"]


class WeightSchedule:
    """One weight's course: ``start`` at progress 0, ``end`` at progress 1.

    Args:
        start: the value at the first step.
        end: the value at the last step (ignored by ``constant``).
        schedule: ``"constant"`` or ``"linear"``.
    """

    SCHEDULES = ("constant", "linear")

    def __init__(self, start: float = 1.0, end: float | None = None, schedule: str = "constant") -> None:
        if schedule not in self.SCHEDULES:
            raise ValueError(f"Unknown schedule {schedule!r}; choose one of {self.SCHEDULES}.")
        self.start = float(start)
        self.end = float(start if end is None else end)
        self.schedule = schedule

    def __call__(self, progress: float) -> float:
        if self.schedule == "constant":
            return self.start
        return self.start + (self.end - self.start) * min(max(progress, 0.0), 1.0)

    def __repr__(self) -> str:
        return f"WeightSchedule(start={self.start}, end={self.end}, schedule={self.schedule!r})"


class LossWeightSchedule:
    """Set the weights of an :class:`monai_rd.losses.RDLoss` before every iteration.

    Progress runs from 0 at the first step to 1 at the last one, where a step is an iteration
    (``unit="iteration"``: ``(iteration - 1) / (max_iterations - 1)``) or an epoch (``unit="epoch"``:
    ``(epoch - 1) / (max_epochs - 1)``). The paper's schedule, ``c`` and ``l`` falling linearly from 1 to 0
    while ``a = b = 1``, is the default. The weights are a function of the engine's position alone, so a
    resumed run continues the schedule where it stopped.

    Args:
        weights: term name -> a number (constant), a :class:`WeightSchedule`, or a mapping of its
            arguments (``{"start": 1, "end": 0, "schedule": "linear"}``). Terms left out keep their weight.
        unit: ``"iteration"`` or ``"epoch"``.
        loss_function: the loss whose ``weights`` to set; default ``engine.loss_function``.
    """

    def __init__(
        self,
        weights: Mapping[str, float | WeightSchedule | Mapping] | None = None,
        unit: str = "iteration",
        loss_function=None,
    ) -> None:
        if unit not in ("iteration", "epoch"):
            raise ValueError(f"unit must be 'iteration' or 'epoch', got {unit!r}.")
        if weights is None:
            weights = rd_default_weights()
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

    def _loss(self, engine: Engine):
        return self.loss_function if self.loss_function is not None else engine.loss_function

    def _check_terms(self, engine: Engine) -> None:
        weights = self._loss(engine).weights
        unknown = sorted(set(self.schedules) - set(weights))
        if unknown:
            raise KeyError(f"LossWeightSchedule: unknown loss terms {unknown}; the loss has {sorted(weights)}.")

    def progress(self, engine: Engine) -> float:
        """Training progress in ``[0, 1]`` of the current step."""
        if self.unit == "epoch":
            done, total = engine.state.epoch - 1, engine.state.max_epochs
        else:
            done, total = engine.state.iteration - 1, engine.state.max_epochs * engine.state.epoch_length
        return done / (total - 1) if total > 1 else 0.0

    def __call__(self, engine: Engine) -> None:
        p = self.progress(engine)
        weights = self._loss(engine).weights
        for name, schedule in self.schedules.items():
            weights[name] = schedule(p)

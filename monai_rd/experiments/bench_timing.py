"""Steady-state step timing of a real training engine, split into the parts of a step (``monai-rd bench``).

:class:`StepTimer` attaches timestamps to the events an Ignite/MONAI trainer fires in every iteration, so it times
the engine and the loader exactly as training runs them (no copy of the step). One step runs from
``GET_BATCH_STARTED`` to the next step's ``GET_BATCH_STARTED``; its parts, in the main thread:

- ``batch_wait``: ``GET_BATCH_STARTED`` -> ``GET_BATCH_COMPLETED`` (the loader's ``next``: waiting for a batch,
  or loading it when nothing prefetches);
- ``forward``: ``ITERATION_STARTED`` -> ``FORWARD_COMPLETED`` (batch to the device, ``zero_grad``, the network's
  forward: ``S``, ``g``, ``h``, and ``T`` when it runs in the loop);
- ``loss``: -> ``LOSS_COMPLETED`` (the loss forward: CE, or the RD loss with KD and CKA, and its finiteness check);
- ``backward``: -> ``BACKWARD_COMPLETED``;
- ``optimizer``: -> ``MODEL_COMPLETED`` (the optimizer step and the trainer's scalar outputs);
- ``engine``: everything else, between ``GET_BATCH_COMPLETED`` and ``ITERATION_STARTED``, from
  ``MODEL_COMPLETED`` to the end of ``ITERATION_COMPLETED`` (MONAI's decollation and post-processing, metrics,
  handlers) and up to the next ``GET_BATCH_STARTED`` (epoch ends and starts);
- ``loader_thread`` (CPU time only): the CPU time of the process's other threads during the step
  (``process_time`` minus the main thread's ``thread_time``): with ``num_workers=0`` the loader thread reading,
  augmenting and collating the next batch (and the feature-cache reads), in parallel with the main thread.

The main-thread parts sum to the step by construction; they are reconciled with an independent clock in
:func:`steady_state` (``total`` vs ``sum of parts``). Worker processes (``num_workers > 0``) are not counted.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

__all__ = ["PARTS", "StepTimer", "steady_state"]

PARTS = ("batch_wait", "forward", "loss", "backward", "optimizer", "engine")
_STAMPS = ("get_batch_started", "get_batch_completed", "iteration_started", "forward_completed", "loss_completed",
           "backward_completed", "model_completed", "iteration_completed")  # fmt: skip


def _default_clock() -> tuple[float, float, float]:
    """(wall, main-thread CPU, process CPU) seconds."""
    return time.perf_counter(), time.thread_time(), time.process_time()


class StepTimer:
    """Time every step of ``engine`` by its events; stop it once the steady state has been measured.

    Args:
        engine: an Ignite engine that fires MONAI's ``IterationEvents`` (``SupervisedTrainer``, ``RDTrainer``).
        warmup_steps: steps excluded at the start (besides every step of the first epoch, when
            ``skip_first_epoch``): graph set-up, allocator growth, the loader's first prefetch.
        repeats, min_steps, min_time: after the warm-up, ``repeats`` consecutive windows are measured, each of at
            least ``min_steps`` steps and ``min_time`` seconds of process CPU time; then the engine is terminated.
        clock: returns ``(wall, main-thread CPU, process CPU)`` seconds (tests pass a fake one).
        sync: called before every timestamp (``torch.cuda.synchronize`` on a GPU, so each part gets its kernels).
    """

    def __init__(
        self,
        engine,
        warmup_steps: int = 0,
        repeats: int = 3,
        min_steps: int = 4,
        min_time: float = 0.0,
        skip_first_epoch: bool = True,
        clock: Callable[[], tuple[float, float, float]] = _default_clock,
        sync: Callable[[], None] | None = None,
    ) -> None:
        from ignite.engine import Events
        from monai.engines.utils import IterationEvents

        self.warmup_steps, self.repeats, self.min_steps, self.min_time = warmup_steps, repeats, min_steps, min_time
        self.skip_first_epoch = skip_first_epoch
        self.clock, self.sync = clock, sync
        self.steps: list[dict] = []  # one per finished step: {"epoch", "parts": {part: (wall, cpu)}, ...}
        self._stamps: dict[str, tuple[float, float, float]] = {}
        self._epoch = self._step_epoch = 0
        events = [
            (Events.GET_BATCH_STARTED, "get_batch_started", True),
            (Events.GET_BATCH_COMPLETED, "get_batch_completed", True),
            (Events.ITERATION_STARTED, "iteration_started", False),
            (IterationEvents.FORWARD_COMPLETED, "forward_completed", True),
            (IterationEvents.LOSS_COMPLETED, "loss_completed", True),
            (IterationEvents.BACKWARD_COMPLETED, "backward_completed", True),
            (IterationEvents.MODEL_COMPLETED, "model_completed", True),
            (Events.ITERATION_COMPLETED, "iteration_completed", False),
        ]
        for event, name, first in events:
            self._attach(engine, event, name, first)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.COMPLETED, lambda e: self._close_step(None))
        self.engine = engine

    def _attach(self, engine, event, name: str, first: bool) -> None:
        def stamp(_engine=None) -> None:
            if self.sync is not None:
                self.sync()
            now = self.clock()
            if name == "get_batch_started":
                self._close_step(now)
                self._step_epoch = self._epoch
            self._stamps[name] = now

        engine.add_event_handler(event, stamp)
        if first:  # run before the engine's own handlers of this event (MONAI's decollation on MODEL_COMPLETED ...)
            handlers = engine._event_handlers[event]  # Ignite keeps them in firing order; no public insert
            handlers.insert(0, handlers.pop())

    def _epoch_started(self, _engine=None) -> None:
        self._epoch += 1

    def _close_step(self, end: tuple[float, float, float] | None) -> None:
        """Record the step whose stamps are complete, ending at ``end`` (the next step's start, or now)."""
        s = self._stamps
        if len(s) < len(_STAMPS):
            self._stamps = {}
            return
        end = end or self.clock()
        t = [s[name] for name in _STAMPS] + [end]

        def span(a: int, b: int) -> tuple[float, float]:
            return t[b][0] - t[a][0], t[b][1] - t[a][1]

        engine_parts = [span(1, 2), span(6, 7), span(7, 8)]
        parts = {
            "batch_wait": span(0, 1),
            "forward": span(2, 3),
            "loss": span(3, 4),
            "backward": span(4, 5),
            "optimizer": span(5, 6),
            "engine": (sum(p[0] for p in engine_parts), sum(p[1] for p in engine_parts)),
        }
        main_cpu = t[8][1] - t[0][1]
        process_cpu = t[8][2] - t[0][2]
        self.steps.append({"epoch": self._step_epoch, "parts": parts, "wall": t[8][0] - t[0][0], "cpu": process_cpu,
                           "loader_thread_cpu": max(0.0, process_cpu - main_cpu)})  # fmt: skip
        self._stamps = {}
        if self._done():
            self.engine.terminate()

    def measured(self) -> list[dict]:
        """The steps after the warm-up."""
        first_epoch = min((st["epoch"] for st in self.steps), default=0)
        kept = [st for st in self.steps if not (self.skip_first_epoch and st["epoch"] == first_epoch)]
        return kept[self.warmup_steps :]

    def _done(self) -> bool:
        return len(_windows(self.measured(), self.repeats, self.min_steps, self.min_time)) >= self.repeats


def _windows(steps: Sequence[dict], repeats: int, min_steps: int, min_time: float) -> list[list[dict]]:
    """Consecutive windows of at least ``min_steps`` steps and ``min_time`` CPU seconds (at most ``repeats``)."""
    windows, current = [], []
    for st in steps:
        current.append(st)
        if len(current) >= min_steps and sum(x["cpu"] for x in current) >= min_time:
            windows.append(current)
            current = []
            if len(windows) == repeats:
                break
    return windows


def steady_state(steps: Sequence[dict], batch_size: int, repeats: int = 3, min_steps: int = 4,
                 min_time: float = 0.0) -> dict:  # fmt: skip
    """Steady-state figures of measured steps (warm-up already excluded, e.g. :meth:`StepTimer.measured`).

    The steps are cut into ``repeats`` consecutive windows (:class:`StepTimer`'s rule; fewer if the run ended
    early); per window, seconds per image in wall and CPU time. Returns ``img_s`` (median over windows, wall and
    CPU), ``img_s_spread`` (min and max over windows, wall and CPU), ``windows``, ``steps``, and ``breakdown``:
    per part of :data:`PARTS` plus ``loader_thread`` (CPU only), milliseconds per step (wall, CPU) over all the
    windows' steps, with ``total`` (the steps' own wall and process CPU time) and ``sum_of_parts`` (wall: the
    main-thread parts; CPU: those plus ``loader_thread``) to reconcile them.
    """
    windows = _windows(steps, repeats, min_steps, min_time) or ([list(steps)] if steps else [])
    if not windows:
        raise ValueError("No measured steps: run more steps than the warm-up.")
    rates = [
        (batch_size * len(w) / sum(st["wall"] for st in w), batch_size * len(w) / sum(st["cpu"] for st in w))
        for w in windows
    ]
    used = [st for w in windows for st in w]
    n = len(used)
    breakdown = {
        part: [1000 * sum(st["parts"][part][i] for st in used) / n for i in (0, 1)] for part in PARTS
    }  # fmt: skip
    breakdown["loader_thread"] = [math.nan, 1000 * sum(st["loader_thread_cpu"] for st in used) / n]
    total = [1000 * sum(st["wall"] for st in used) / n, 1000 * sum(st["cpu"] for st in used) / n]
    parts_sum = [
        sum(breakdown[p][0] for p in PARTS),
        sum(breakdown[p][1] for p in PARTS) + breakdown["loader_thread"][1],
    ]
    return {
        "img_s": [statistics.median(r[i] for r in rates) for i in (0, 1)],
        "img_s_spread": [[min(r[i] for r in rates), max(r[i] for r in rates)] for i in (0, 1)],
        "windows": len(windows),
        "steps": n,
        "breakdown_ms_per_step": breakdown,
        "total_ms_per_step": total,
        "sum_of_parts_ms_per_step": parts_sum,
    }

"""One line per epoch with the time left: the progress every long phase prints when no bar is shown."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["EpochProgress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: a duration a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class EpochProgress:
    """Format ``"<name> epoch 3/8: loss 0.412, 12 s elapsed, about 20 s left"`` after each epoch.

    The time left is the mean epoch time so far times the epochs left (no estimate before the first epoch ends).

    Args:
        name: what is running (``"teacher pretraining"``, ``"training"``).
        total: the number of epochs.
        start_epoch: epochs already done before this run (a resumed training), not counted in the timing.
        clock: seconds from a fixed origin (``time.monotonic``).
    """

    def __init__(self, name: str, total: int, start_epoch: int = 0, clock: Callable[[], float] = time.monotonic):
        self.name, self.total, self.start_epoch, self.clock = name, int(total), int(start_epoch), clock
        self.start = clock()

    def line(self, epoch: int, **metrics: float) -> str:
        """The line after epoch ``epoch`` (1-based) ended; ``metrics`` are printed as ``name value`` (3 decimals)."""
        elapsed = self.clock() - self.start
        done = max(1, epoch - self.start_epoch)
        left = elapsed / done * max(0, self.total - epoch)
        parts = [f"{k} {v:.3f}" for k, v in metrics.items()]
        parts += [f"{format_seconds(elapsed)} elapsed", f"about {format_seconds(left)} left" if epoch < self.total
                  else "done"]  # fmt: skip
        return f"{self.name} epoch {epoch}/{self.total}: " + ", ".join(parts)

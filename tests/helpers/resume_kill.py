"""Test-only handler: SIGKILL the training process at a given iteration (a hard crash, no cleanup runs)."""

import os
import signal

from ignite.engine import Events


class KillAt:
    def __init__(self, iteration: int) -> None:
        self.iteration = int(iteration)

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=self.iteration), self)

    def __call__(self, engine) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

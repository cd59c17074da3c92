"""Test-only helper: an Ignite handler that kills a process group (the MLflow server) at a given iteration."""

import os
import signal
import time
import urllib.request


class KillProcessGroupAt:
    """SIGKILL process group ``pgid`` when the trainer completes iteration ``iteration``; wait until ``url`` is gone."""

    def __init__(self, pgid: int, iteration: int, url: str) -> None:
        self.pgid, self.iteration, self.url = int(pgid), int(iteration), url

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED(once=self.iteration), self)

    def __call__(self, engine) -> None:
        os.killpg(self.pgid, signal.SIGKILL)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1)
            except OSError:
                print(f"TEST: killed the MLflow server at iteration {engine.state.iteration}", flush=True)
                return
            time.sleep(0.1)
        raise RuntimeError("the MLflow server is still answering after SIGKILL")

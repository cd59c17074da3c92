"""One log line per epoch with the time left, so a run without a progress bar is never silent for long."""

from __future__ import annotations

import logging

from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.utils import EpochProgress

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["EpochProgressLog"]


class EpochProgressLog:
    """On each ``EPOCH_COMPLETED`` of the engine it is attached to, log (logger ``monai_rd``, INFO)
    ``"<name> epoch 3/15: 12 s elapsed, about 48 s left"`` (:class:`monai_rd.utils.EpochProgress`).

    Attach it after the ``ValidationHandler`` so that the epoch time includes validation. A resumed run counts
    from the epoch it resumed at.

    Args:
        name: what the engine runs (``"training"``, ``"stage 1"``).
    """

    def __init__(self, name: str = "training") -> None:
        self.name = name
        self.progress: EpochProgress | None = None
        self.logger = logging.getLogger("monai_rd")

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _started(self, engine) -> None:
        self.progress = EpochProgress(self.name, engine.state.max_epochs, start_epoch=engine.state.epoch)

    def _epoch_completed(self, engine) -> None:
        if self.progress is not None:
            self.logger.info(self.progress.line(engine.state.epoch))

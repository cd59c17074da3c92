"""The per-method trainer handler: what a method needs from each batch besides image and label."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.data.indices import INDEX_KEY

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["MethodHandlers"]


class MethodHandlers:
    """Attach to the main trainer whatever the method needs; a no-op for methods that need nothing.

    For methods whose loss reads dataset indices (CRD), it hands the batch's ``index`` entry (added by
    :func:`monai_rd.data.with_indices`) to the loss before every iteration, and fails naming the key when
    the batch has none.
    """

    def __init__(self, method) -> None:
        self.method = method

    def attach(self, engine: Engine) -> None:
        if self.method.sample_indices:
            engine.add_event_handler(Events.ITERATION_STARTED, self._set_index)

    def _set_index(self, engine: Engine) -> None:
        batch = engine.state.batch
        if not isinstance(batch, dict) or INDEX_KEY not in batch:
            keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise KeyError(
                f"method {self.method.name!r} needs the dataset index of each sample under {INDEX_KEY!r}, but the "
                f"batch has {keys}; build the training dataset from monai_rd.data.with_indices(datalist)."
            )
        self.method.loss.index = batch[INDEX_KEY]

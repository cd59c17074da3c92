"""Write per-image class probabilities and predicted labels to a CSV."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from monai.data import MetaTensor
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, min_version, optional_import

from monai_rd.utils import atomic_write_text

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["PredictionCSVWriter"]


class PredictionCSVWriter:
    """Collect ``pred`` (class probabilities ``[C]`` per item) with each image's file name; write a CSV.

    Columns: ``file``, ``prob_<class>`` for each class, ``predicted_label``. The file is written once,
    atomically, when the engine completes, so a crashed run leaves no partial CSV. A NaN/Inf prediction stops the
    run (``FloatingPointError`` naming the file): never a label on NaN.

    Args:
        output_file: the CSV path.
        class_names: names of the ``C`` classes, in label order.
        multi_label: ``predicted_label`` lists every class with probability >= ``threshold`` (``|``-joined)
            instead of the arg-max class.
    """

    def __init__(
        self, output_file: str, class_names: Sequence[str], multi_label: bool = False, threshold: float = 0.5
    ) -> None:
        self.output_file = os.fspath(output_file)
        self.class_names = list(class_names)
        self.multi_label = multi_label
        self.threshold = threshold
        self.rows: list[list] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        for item in engine.state.output:
            prob = torch.as_tensor(item[Keys.PRED]).detach().float().cpu().reshape(-1)
            if prob.numel() != len(self.class_names):
                raise ValueError(f"Prediction has {prob.numel()} classes but {len(self.class_names)} class names.")
            image = item[Keys.IMAGE]
            name = image.meta.get("filename_or_obj", "") if isinstance(image, MetaTensor) else ""
            if not torch.isfinite(prob).all():
                raise FloatingPointError(
                    f"the prediction for {str(name) or 'an input'!r} is {prob.tolist()} (NaN/Inf): no label is "
                    f"written for it, and {self.output_file!r} is not written. Check that input's values "
                    "(inference refuses NaN/Inf images before predicting; this one became non-finite later)."
                )
            if self.multi_label:
                label = "|".join(c for c, p in zip(self.class_names, prob.tolist()) if p >= self.threshold)
            else:
                label = self.class_names[int(prob.argmax())]
            self.rows.append([str(name), *(f"{p:.6f}" for p in prob.tolist()), label])

    def write(self, engine: Engine | None = None) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["file", *(f"prob_{c}" for c in self.class_names), "predicted_label"])
        writer.writerows(self.rows)
        return atomic_write_text(self.output_file, buffer.getvalue())

"""What ``evaluate.json`` leaves behind: a summary that says which split of which datalist it scored."""

from __future__ import annotations

import logging
import numbers
import os
from typing import Any

from monai_rd.utils import atomic_write_json

__all__ = ["write_evaluation_summary"]


def write_evaluation_summary(evaluator: Any, split: str, eval_dir: str, datalist_file: str, checkpoint: str) -> str:
    """Write ``<eval_dir>/summary.json`` (split, item count, checkpoint, metrics) and log one line about it.

    ``evaluator`` is the engine that has just run on the ``split`` list of ``datalist_file``.
    """
    metrics = {k: float(v) for k, v in evaluator.state.metrics.items() if isinstance(v, numbers.Real)}
    summary = {
        "split": split,
        "num_items": len(evaluator.data_loader.dataset),
        "datalist_file": os.path.abspath(datalist_file),
        "checkpoint": os.path.abspath(checkpoint),
        "metrics": metrics,
    }
    path = atomic_write_json(os.path.join(eval_dir, "summary.json"), summary)
    line = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    logging.getLogger("monai_rd.evaluate").info(f"scored split {split!r} ({summary['num_items']} items): {line}")
    print(f"Scored the {split!r} split ({summary['num_items']} items) of {summary['datalist_file']}: {line}")
    print(f"Summary: {path}")
    return path

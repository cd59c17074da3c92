"""What both RD engines do with a batch: keys of their iteration output (:class:`~monai_rd.utils.RDKeys`, defined
in ``monai_rd.utils``) and the batch preparation they share."""

from __future__ import annotations

from typing import Any

import torch

from monai.utils import CommonKeys as Keys

from monai_rd.utils.enums import RDKeys

__all__ = ["RDKeys", "batch_teacher_features", "prepare_rd_batch"]


def batch_teacher_features(engine: Any, batchdata: Any) -> torch.Tensor | None:
    """The precomputed teacher features a batch carries (feature cache), on the engine's device, else None."""
    if isinstance(batchdata, dict) and RDKeys.TEACHER_FEATURES in batchdata:
        return batchdata[RDKeys.TEACHER_FEATURES].to(engine.state.device, non_blocking=engine.non_blocking)
    return None


def prepare_rd_batch(engine: Any, batchdata: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(inputs [B, C, H, W], targets, teacher features [B, d_T] or None)`` on the engine's device; starts
    ``engine.state.output`` with the image and label, as MONAI's workflows do."""
    if batchdata is None:
        raise ValueError("Must provide batch data for current iteration.")
    batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
    inputs, targets = batch[0], batch[1]
    engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}
    return inputs, targets, batch_teacher_features(engine, batchdata)

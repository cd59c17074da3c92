"""Small helpers shared by the modality transforms."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import convert_to_tensor

__all__ = ["source_of", "to_numpy64", "like"]


def source_of(img: Any) -> str:
    """``" in '<file>'"`` when ``img`` is a MetaTensor that knows its file, else ``""`` (for error messages)."""
    source = img.meta.get("filename_or_obj", "") if isinstance(img, MetaTensor) else ""
    return f" in {source!r}" if source else ""


def to_numpy64(img: Any) -> np.ndarray:
    """``img`` (tensor or array) as a float64 NumPy array."""
    if isinstance(img, torch.Tensor):
        return img.detach().cpu().numpy().astype(np.float64)
    return np.asarray(img, dtype=np.float64)


def like(values: np.ndarray | torch.Tensor, img: Any, dtype=torch.float32) -> torch.Tensor:
    """``values`` as a float32 tensor carrying ``img``'s metadata when ``img`` is a MetaTensor."""
    out = convert_to_tensor(values, dtype=dtype, track_meta=False)
    if isinstance(img, MetaTensor):
        return MetaTensor(out, meta=dict(img.meta), applied_operations=list(img.applied_operations))
    return out

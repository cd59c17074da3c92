"""Bring heterogeneous teacher/student features to comparable layouts (tokens -> maps, spatial pooling).

The baseline KD losses compare features of two different networks: a ViT teacher gives tokens ``[B, N, D]``,
a CNN student gives maps ``[B, C, H, W]``, widths and resolutions differ. The conventions used by every loss in
``monai_rd.losses`` are:

* maps ``[B, C, H, W]`` are used as they are;
* tokens ``[B, N, D]`` become maps ``[B, D, h, w]`` when ``N - P = h * w`` with ``h = w`` a square grid, where
  ``P`` prefix tokens (CLS / distillation / register tokens) are dropped first. ``P`` is given
  (``num_prefix_tokens``), or else taken as 0 when ``N`` is square and 1 (a CLS token) when ``N - 1`` is; any other
  layout (e.g. DINOv2 with registers, DeiT with a distillation token) needs ``num_prefix_tokens``, otherwise a
  ``ValueError`` names the shape;
* vectors ``[B, D]`` become ``[B, D, 1, 1]`` maps (losses that need a spatial layout refuse them);
* when two maps differ in resolution, the larger is average-pooled (``adaptive_avg_pool2d``) to the smaller
  one, as RepDistiller does for FitNets/AT/VID (never upsampled, so no values are invented);
* channel widths are matched by the loss's own trainable regressor, not here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "as_feature_list",
    "as_shape_list",
    "map_shape",
    "to_map",
    "to_vector",
    "pool_to_common",
    "paired_maps",
]

AUTO_PREFIX_TOKENS = (0, 1)  # no prefix, or a CLS token


def _grid_side(num_tokens: int, num_prefix_tokens: int | None, shape: tuple, name: str) -> tuple[int, int]:
    candidates = [num_prefix_tokens] if num_prefix_tokens is not None else AUTO_PREFIX_TOKENS
    for p in candidates:
        n = num_tokens - p
        side = math.isqrt(n) if n > 0 else 0
        if n > 0 and side * side == n:
            return p, side
    raise ValueError(
        f"{name} tokens of shape {shape} cannot be laid out as a square map: {num_tokens} tokens minus "
        f"{'the given ' + str(num_prefix_tokens) if num_prefix_tokens is not None else '0 or 1 (CLS)'}"
        " prefix tokens is not a square number. Pass num_prefix_tokens (CLS + distillation/register tokens), "
        "or give [B, C, H, W] maps."
    )


def map_shape(
    shape: Sequence[int], name: str = "feature", num_prefix_tokens: int | None = None
) -> tuple[int, int, int]:
    """Per-sample shape (no batch dimension) -> the ``(C, H, W)`` the feature will have after :func:`to_map`.

    ``(C, H, W)`` -> itself; ``(N, D)`` tokens -> ``(D, s, s)``; ``(D,)`` -> ``(D, 1, 1)``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        _, side = _grid_side(shape[0], num_prefix_tokens, shape, name)
        return (shape[1], side, side)
    if len(shape) == 1:
        return (shape[0], 1, 1)
    raise ValueError(
        f"{name} shape {shape} is not supported: expected (C, H, W) maps, (N, D) tokens or (D,) vectors "
        "per sample (without the batch dimension)."
    )


def to_map(x: torch.Tensor, name: str = "feature", num_prefix_tokens: int | None = None) -> torch.Tensor:
    """``[B, C, H, W]`` | ``[B, N, D]`` | ``[B, D]`` -> ``[B, C, H, W]`` (see the module docstring)."""
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        b, n, d = x.shape
        p, side = _grid_side(n, num_prefix_tokens, tuple(x.shape), name)
        return x[:, p:, :].transpose(1, 2).reshape(b, d, side, side)
    if x.ndim == 2:
        return x[:, :, None, None]
    raise ValueError(
        f"{name} of shape {tuple(x.shape)} is not supported: expected [B, C, H, W] maps, [B, N, D] tokens "
        "or [B, D] vectors."
    )


def to_vector(x: torch.Tensor, name: str = "feature") -> torch.Tensor:
    """``[B, D]`` -> itself; ``[B, C, H, W]`` -> spatial mean ``[B, C]``; ``[B, N, D]`` -> token mean ``[B, D]``."""
    if x.ndim == 2:
        return x
    if x.ndim == 4:
        return x.mean(dim=(2, 3))
    if x.ndim == 3:
        return x.mean(dim=1)
    raise ValueError(f"{name} of shape {tuple(x.shape)} is not supported: expected [B, D], [B, N, D] or [B, C, H, W].")


def pool_to_common(s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger of two maps ``[B, C, H, W]`` to the smaller resolution (per dimension)."""
    if s.shape[0] != t.shape[0]:
        raise ValueError(
            f"student and teacher features have different batch sizes: {tuple(s.shape)} vs {tuple(t.shape)}."
        )
    size = (min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3]))
    if tuple(s.shape[2:]) != size:
        s = F.adaptive_avg_pool2d(s, size)
    if tuple(t.shape[2:]) != size:
        t = F.adaptive_avg_pool2d(t, size)
    return s, t


def paired_maps(
    student: torch.Tensor, teacher: torch.Tensor, channels: tuple[int, int], num_prefix_tokens: int | None, loss: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher features (maps ``[B, C, H, W]`` or tokens ``[B, N, D]``) as maps of one resolution,
    ``[B, C_S, h, w]`` and ``[B, C_T, h, w]``, checked against the ``(C_S, C_T)`` the ``loss`` was built for."""
    s, t = to_map(student, "student", num_prefix_tokens), to_map(teacher, "teacher", num_prefix_tokens)
    if (s.shape[1], t.shape[1]) != tuple(channels):
        raise ValueError(
            f"{loss} was built for {channels[0]} -> {channels[1]} channels, got student "
            f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}."
        )
    return pool_to_common(s, t)


def as_feature_list(x: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """A tensor or a sequence of tensors (one per layer) -> a list."""
    return [x] if isinstance(x, torch.Tensor) else list(x)


def as_shape_list(shapes: Sequence[int] | Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """One per-sample shape ``(C, H, W)`` or a sequence of them (one per layer) -> a list of tuples."""
    shapes = list(shapes)
    if not shapes:
        raise ValueError("feature shapes must not be empty.")
    if all(isinstance(s, int) for s in shapes):
        return [tuple(shapes)]
    return [tuple(int(v) for v in s) for s in shapes]

"""``KD_LOSSES``: baseline distillation losses by method name.

Every builder is called as ``builder(student_shapes=..., teacher_shapes=..., **options)`` where a shape is the
per-sample feature shape without the batch dimension (``(C, H, W)`` maps, ``(N, D)`` tokens, ``(D,)`` vectors, or
``(num_classes,)`` logits for ``hinton_kd``), or a list of them (one per layer). It returns the loss module with
its trainable parts (regressors, heads, memory banks), to be optimised with the student.

    >>> loss = build_kd_loss("hint", (32, 8, 8), (197, 768))  # CNN student map vs ViT-B/16 tokens
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn as nn

from monai_rd.utils.registry import Registry
from monai_rd.losses.at import ATLoss
from monai_rd.losses.crd import CRDLoss
from monai_rd.losses.feature_shapes import as_shape_list, map_shape
from monai_rd.losses.hint import HintLoss
from monai_rd.losses.kd import KDLoss
from monai_rd.losses.mgd import MGDLoss
from monai_rd.losses.norm import NORMLoss
from monai_rd.losses.semckd import SemCKDLoss
from monai_rd.losses.vid import LayerwiseVIDLoss, VIDLoss

__all__ = ["KD_LOSSES", "build_kd_loss"]

KD_LOSSES = Registry("kd loss")

Shapes = Sequence[int] | Sequence[Sequence[int]]


def build_kd_loss(name: str, student_shapes: Shapes, teacher_shapes: Shapes, **options: Any) -> nn.Module:
    """Build the baseline loss ``name`` for these per-sample feature shapes; ``options`` go to its constructor."""
    return KD_LOSSES.build(name, student_shapes=student_shapes, teacher_shapes=teacher_shapes, **options)


def _channels(shapes: Shapes, name: str, prefix: int | None) -> list[int]:
    return [map_shape(s, name, prefix)[0] for s in as_shape_list(shapes)]


def _single_pair(method: str, student_shapes: Shapes, teacher_shapes: Shapes, prefix: int | None) -> tuple[int, int]:
    cs, ct = _channels(student_shapes, "student", prefix), _channels(teacher_shapes, "teacher", prefix)
    if len(cs) != 1 or len(ct) != 1:
        raise ValueError(
            f"{method} distils one layer pair; got {len(cs)} student and {len(ct)} teacher feature shapes."
        )
    return cs[0], ct[0]


@KD_LOSSES.register("hinton_kd")
def _hinton_kd(student_shapes: Shapes, teacher_shapes: Shapes, temperature: float = 4.0, multi_label: bool = False):
    s, t = as_shape_list(student_shapes), as_shape_list(teacher_shapes)
    if s != t or len(s) != 1 or len(s[0]) != 1:
        raise ValueError(
            f"hinton_kd compares logits of one shape (num_classes,), got student {s} and teacher {t}; "
            "give the teacher a head with the student's classes first (linear probe or fine-tuning)."
        )
    return KDLoss(temperature=temperature, multi_label=multi_label)


@KD_LOSSES.register("hint")
def _hint(student_shapes: Shapes, teacher_shapes: Shapes, num_prefix_tokens: int | None = None):
    cs = _channels(student_shapes, "student", num_prefix_tokens)
    ct = _channels(teacher_shapes, "teacher", num_prefix_tokens)
    return HintLoss(cs, ct, num_prefix_tokens=num_prefix_tokens)


@KD_LOSSES.register("at")
def _at(
    student_shapes: Shapes,
    teacher_shapes: Shapes,
    p: float = 2.0,
    beta: float = 1000.0,
    num_prefix_tokens: int | None = None,
):
    s, t = as_shape_list(student_shapes), as_shape_list(teacher_shapes)
    if len(s) != len(t) or any(len(x) == 1 for x in s + t):
        raise ValueError(
            f"at needs one spatial teacher feature per student feature ((C, H, W) maps or (N, D) tokens), got "
            f"student {s} and teacher {t}."
        )
    for x in s + t:
        map_shape(x, "feature", num_prefix_tokens)  # refuses token counts that are not a square grid
    return ATLoss(p=p, beta=beta, num_prefix_tokens=num_prefix_tokens)


@KD_LOSSES.register("vid")
def _vid(student_shapes: Shapes, teacher_shapes: Shapes, num_prefix_tokens: int | None = None, **options: Any):
    cs, ct = (
        _channels(student_shapes, "student", num_prefix_tokens),
        _channels(teacher_shapes, "teacher", num_prefix_tokens),
    )
    if len(cs) == 1 and len(ct) == 1:
        return VIDLoss(cs[0], ct[0], num_prefix_tokens=num_prefix_tokens, **options)
    return LayerwiseVIDLoss(cs, ct, num_prefix_tokens=num_prefix_tokens, **options)


@KD_LOSSES.register("crd")
def _crd(student_shapes: Shapes, teacher_shapes: Shapes, num_data: int | None = None, **options: Any):
    if num_data is None:
        raise ValueError("crd needs num_data (the number of training samples) to size its memory banks.")
    s, t = as_shape_list(student_shapes), as_shape_list(teacher_shapes)
    if len(s) != 1 or len(t) != 1:
        raise ValueError(f"crd distils one layer pair; got student {s} and teacher {t}.")

    def width(shape: tuple[int, ...]) -> int:  # vectors (D,), tokens (N, D) -> D, maps (C, H, W) -> C
        return shape[-1] if len(shape) == 2 else shape[0]

    return CRDLoss(width(s[0]), width(t[0]), num_data=num_data, **options)


@KD_LOSSES.register("semckd")
def _semckd(
    student_shapes: Shapes,
    teacher_shapes: Shapes,
    batch_size: int | None = None,
    num_prefix_tokens: int | None = None,
    **options: Any,
):
    if batch_size is None:
        raise ValueError("semckd needs batch_size (its query/key heads read [B, B] batch similarity rows).")
    cs = _channels(student_shapes, "student", num_prefix_tokens)
    ct = _channels(teacher_shapes, "teacher", num_prefix_tokens)
    return SemCKDLoss(cs, ct, batch_size=batch_size, num_prefix_tokens=num_prefix_tokens, **options)


@KD_LOSSES.register("mgd")
def _mgd(student_shapes: Shapes, teacher_shapes: Shapes, num_prefix_tokens: int | None = None, **options: Any):
    for x in as_shape_list(student_shapes) + as_shape_list(teacher_shapes):
        if len(x) == 1:
            raise ValueError(f"mgd masks spatial positions and needs (C, H, W) or (N, D) features, got {x}.")
    cs, ct = _single_pair("mgd", student_shapes, teacher_shapes, num_prefix_tokens)
    return MGDLoss(cs, ct, num_prefix_tokens=num_prefix_tokens, **options)


@KD_LOSSES.register("norm")
def _norm(student_shapes: Shapes, teacher_shapes: Shapes, num_prefix_tokens: int | None = None, **options: Any):
    cs, ct = _single_pair("norm", student_shapes, teacher_shapes, num_prefix_tokens)
    return NORMLoss(cs, ct, num_prefix_tokens=num_prefix_tokens, **options)

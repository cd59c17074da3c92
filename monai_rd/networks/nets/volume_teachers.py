"""Frozen teachers for volumes: a 3D encoder, or any 2D teacher applied slice by slice.

Both take ``[B, C, D, H, W]`` volumes (``C`` = 1 for CT/MRI; intensities already windowed to ``[0, 1]`` by the
CT volume preset) and stay frozen like :class:`monai_rd.networks.nets.teachers.FrozenTeacher`: eval mode, no
autograd, no trainable parameter.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.networks.nets.teachers import TEACHERS, FrozenTeacher

__all__ = [
    "FrozenVolumeTeacher", "SliceWiseTeacher", "VOLUME_INTENSITY", "SLICE_POOLS", "probe_volume_shape",
    "check_teacher_dims",
]  # fmt: skip

#: how a volume teacher renormalises its ``[0, 1]`` input: "identity" (SwinUNETR SSL and Models Genesis were
#: pre-trained on [0, 1] windowed CT) or "zscore" (MedicalNet: per-volume mean/std of the non-zero voxels).
VOLUME_INTENSITY = ("identity", "zscore")

#: how :class:`SliceWiseTeacher` pools its per-slice features ("none" keeps the sequence ``[B, S, d]``).
SLICE_POOLS = ("mean", "max", "none")


@torch.no_grad()
def probe_volume_shape(module: nn.Module, in_channels: int = 1, size: int = 32) -> tuple[int, ...]:
    """Shape of ``module``'s output for one ``[1, in_channels, size, size, size]`` volume, batch dim dropped."""
    was_training = module.training
    module.eval()
    try:
        out = module(torch.zeros(1, in_channels, size, size, size))
    finally:
        module.train(was_training)
    return tuple(out.shape[1:])


def _zscore_nonzero(x: torch.Tensor) -> torch.Tensor:
    """Per-volume, per-channel z-score over the non-zero voxels (MedicalNet's ``itensity_normalize_one_volume``)."""
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = x[b, c]
            fg = v[v != 0]
            if fg.numel() < 2:  # an empty (all-zero) volume stays zero rather than dividing by 0
                out[b, c] = v
                continue
            out[b, c] = (v - fg.mean()) / fg.std().clamp_min(1e-6)
    return out


class FrozenVolumeTeacher(nn.Module):
    """A frozen 3D encoder ``T``: ``[B, C, D, H, W]`` volumes -> ``[B, d]`` (pooled) or ``[B, d, d', h, w]`` maps.

    Args:
        model: the feature network (pretrained weights already loaded), ``[B, in_channels, ...] -> features``.
        name: registry name (logging, cache keys).
        in_channels: channels the network expects; single-channel input is repeated when it expects more.
        input_size: cube side the volume is resized to (trilinear) before the encoder, or ``None`` to keep it.
        intensity: one of :data:`VOLUME_INTENSITY`.
        probe_size: cube side used to discover ``feature_shape``.
    """

    def __init__(
        self,
        model: nn.Module,
        name: str,
        in_channels: int = 1,
        input_size: int | None = None,
        intensity: str = "identity",
        probe_size: int = 32,
    ) -> None:
        super().__init__()
        if intensity not in VOLUME_INTENSITY:
            raise ValueError(f"intensity must be one of {VOLUME_INTENSITY}, got {intensity!r}.")
        self.model = model
        self.name = name
        self.in_channels = in_channels
        self.input_size = input_size
        self.intensity = intensity
        self.spatial_dims = 3
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        self.feature_shape = probe_volume_shape(self.model, in_channels, input_size or probe_size)
        self.feature_dim = self.feature_shape[0]

    def train(self, mode: bool = True) -> FrozenVolumeTeacher:
        """Stays in eval mode whatever the trainer asks."""
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1 or C, D, H, W]`` in ``[0, 1]`` -> the encoder's own input."""
        if x.ndim != 5:
            raise ValueError(
                f"Volume teacher {self.name!r} expects [B, C, D, H, W] volumes, got shape {tuple(x.shape)}."
            )
        if x.shape[1] == 1 and self.in_channels > 1:
            x = x.expand(-1, self.in_channels, -1, -1, -1)
        elif x.shape[1] != self.in_channels:
            raise ValueError(
                f"Volume teacher {self.name!r} expects 1 or {self.in_channels} channels, got shape {tuple(x.shape)}."
            )
        if self.input_size is not None and tuple(x.shape[-3:]) != (self.input_size,) * 3:
            x = F.interpolate(x, size=(self.input_size,) * 3, mode="trilinear", align_corners=False)
        return _zscore_nonzero(x) if self.intensity == "zscore" else x

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.as_tensor() if hasattr(x, "as_tensor") else x  # plain tensor: per-volume loops slice the batch
        return self.model(self.preprocess(x.float()))


class SliceWiseTeacher(nn.Module):
    """Any 2D teacher applied to every slice of a volume along ``axis``, its features pooled over slices.

    Each slice ``[C, H, W]`` of ``[B, C, D, H, W]`` (for ``axis=2``; 3 and 4 cut along H and W) goes through the
    2D teacher in batches of ``slice_batch`` slices (its own preprocessing: resize, grey -> RGB, mean/std).
    ``pool="mean"``/``"max"`` reduce over slices to ``[B, d]``; ``pool="none"`` returns the sequence
    ``[B, S, d]`` for a learnable attention pool, which belongs to ``g`` (the reprogrammer), not to the frozen
    teacher. The 2D teacher must return pooled features ``[B, d]``.

    Args:
        teacher: a 2D :class:`FrozenTeacher`.
        axis: the volume axis the slices are cut along (2 = depth, 3 = height, 4 = width of ``[B, C, D, H, W]``).
        pool: one of :data:`SLICE_POOLS`.
        slice_batch: slices per teacher call (memory bound on the teacher's input).
        num_slices: for ``pool="none"``, the number of slices ``S`` (fixed by the volume preset's size); it makes
            ``feature_shape`` ``(S, d)``. Required with ``pool="none"``.
    """

    def __init__(
        self,
        teacher: FrozenTeacher,
        axis: int = 2,
        pool: str = "mean",
        slice_batch: int = 64,
        num_slices: int | None = None,
    ) -> None:
        super().__init__()
        if axis not in (2, 3, 4):
            raise ValueError(f"axis must be 2, 3 or 4 (D, H or W of [B, C, D, H, W]), got {axis}.")
        if pool not in SLICE_POOLS:
            raise ValueError(f"pool must be one of {SLICE_POOLS}, got {pool!r}.")
        if len(teacher.feature_shape) != 1:
            raise ValueError(
                f"The slice-wise teacher needs a 2D teacher with pooled features [B, d]; {teacher.name!r} returns "
                f"{teacher.feature_shape}."
            )
        if pool == "none" and not num_slices:
            raise ValueError("pool='none' keeps one feature per slice: pass num_slices (the volume side along axis).")
        if slice_batch < 1:
            raise ValueError(f"slice_batch must be >= 1, got {slice_batch}.")
        self.teacher = teacher
        self.axis = axis
        self.pool = pool
        self.slice_batch = slice_batch
        self.name = f"slicewise:{teacher.name}"
        self.spatial_dims = 3
        self.feature_dim = teacher.feature_dim
        self.feature_shape: tuple[int, ...] = (
            (int(num_slices), teacher.feature_dim) if pool == "none" else (teacher.feature_dim,)  # type: ignore[arg-type]
        )
        super().train(False)

    def train(self, mode: bool = True) -> SliceWiseTeacher:
        """Stays in eval mode whatever the trainer asks."""
        return super().train(False)

    @torch.no_grad()
    def slice_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, D, H, W] -> [B, S, d]``: the 2D teacher's features of each slice along ``axis``."""
        if x.ndim != 5:
            raise ValueError(f"{self.name!r} expects [B, C, D, H, W] volumes, got shape {tuple(x.shape)}.")
        x = x.as_tensor() if hasattr(x, "as_tensor") else x  # a MetaTensor's batched metadata cannot follow the reshape
        b, c = x.shape[:2]
        s = x.shape[self.axis]
        # move the slice axis next to batch and fold it in: [B, C, D, H, W] -> [B*S, C, h, w]
        slices = x.movedim(self.axis, 1).reshape(b * s, c, *[x.shape[i] for i in (2, 3, 4) if i != self.axis])
        feats = torch.cat([self.teacher(slices[i : i + self.slice_batch]) for i in range(0, b * s, self.slice_batch)])
        return feats.reshape(b, s, -1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.slice_features(x)
        if self.pool == "mean":
            return f.mean(dim=1)
        if self.pool == "max":
            return f.amax(dim=1)
        if f.shape[1:] != self.feature_shape:
            raise ValueError(
                f"{self.name!r} was built for {self.feature_shape[0]} slices, got {f.shape[1]}: fix num_slices or the "
                "volume preset's spatial size."
            )
        return f


@TEACHERS.register_family("slicewise")
def slicewise_teacher(
    teacher: str,
    weights=None,
    axis: int = 2,
    pool: str = "mean",
    slice_batch: int = 64,
    num_slices: int | None = None,
    **options,
) -> SliceWiseTeacher:
    """``slicewise:<2D teacher name>``: the 2D teacher (built by :func:`build_teacher` with ``weights`` and
    ``options``) applied to each slice; e.g. ``slicewise:pmc_clip_rn50``."""
    from monai_rd.networks.nets.teachers import build_teacher

    inner = build_teacher(teacher, weights=weights, **options)
    if not isinstance(inner, FrozenTeacher):
        raise TypeError(f"slicewise:{teacher} needs a 2D teacher; {teacher!r} built {type(inner).__name__}.")
    return SliceWiseTeacher(inner, axis=axis, pool=pool, slice_batch=slice_batch, num_slices=num_slices)


def check_teacher_dims(teacher: nn.Module | None, spatial_dims: int) -> None:
    """Refuse, before any training, a teacher whose input dimensionality is not the data's.

    ``teacher`` is a built teacher (``spatial_dims`` attribute: 3 for volume and slice-wise teachers, 2 when absent)
    or ``None`` (no teacher, or a feature cache: nothing to check); ``spatial_dims`` is the data's (the student's):
    2 for images ``[B, C, H, W]``, 3 for volumes ``[B, C, D, H, W]``. A 2D teacher on volumes would otherwise fail
    in the first iteration with a bare ``RuntimeError: expand(...)``.

    Raises:
        ValueError: a 2D teacher on volumes (the message names ``slicewise:<teacher>``, which applies it slice by
            slice), or a volume teacher on 2D images.
    """
    if teacher is None:
        return
    teacher_dims = int(getattr(teacher, "spatial_dims", 2))
    if teacher_dims == int(spatial_dims):
        return
    name = getattr(teacher, "name", "") or type(teacher).__name__
    if teacher_dims == 2:
        raise ValueError(
            f"teacher {name!r} is a 2D teacher ([B, C, H, W] images) but this bundle trains on 3D volumes "
            f"(spatial_dims={spatial_dims}): pass --teacher slicewise:{name} to apply it to each slice and pool the "
            "slices' features (docs/volumes.md), or choose a volume teacher (swin_unetr_ssl, medicalnet_resnet50 ...)."
        )
    raise ValueError(
        f"teacher {name!r} is a volume teacher ([B, C, D, H, W]) but this bundle trains on 2D images "
        f"(spatial_dims={spatial_dims}): choose a 2D teacher (pmc_clip_rn50, resnet50 ...)."
    )

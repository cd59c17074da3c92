"""LVM-Med (Nguyen et al. 2023) ResNet-50 and ViT-B teachers.

- ``lvmmed_resnet.torch``: a torchvision ResNet-50 state dict (its ``fc`` is dropped).
- ``lvmmed_vit.pth``: the SAM image encoder ``ImageEncoderViT`` (ViT-B/16, 1024 px, windowed attention with
  relative positions, global attention in blocks 2, 5, 8, 11, no absolute position embedding, a conv "neck").
  Loaded into timm's ``samvit_base_patch16`` with ``use_abs_pos=False`` after renaming ``mlp.lin1/2`` to
  ``mlp.fc1/2`` (and dropping an ``image_encoder.`` prefix if the file is a whole SAM checkpoint). The neck is
  loaded (strict) but skipped: the pooled feature is the mean over positions of the last block's output (768).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn
import torchvision

from monai_rd.networks.checkpoint import load_weights, select_prefix
from monai_rd.networks.nets.teachers import TEACHERS, FrozenTeacher
from monai_rd.networks.zoo.common import IMAGENET_MEAN, IMAGENET_STD, make_teacher
from monai_rd.networks.zoo.trunks import ResNetTrunk

__all__ = ["lvmmed_resnet50", "lvmmed_vit_b", "SAMViTFeatures", "sam_to_timm"]


@TEACHERS.register("lvmmed_resnet50")
def lvmmed_resnet50(
    weights: str | os.PathLike | None = None,
    pooled: bool = True,
    input_size: int = 224,
    trust_checkpoint: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> FrozenTeacher:
    """LVM-Med ResNet-50 (``lvmmed_resnet.torch``): ``[B, 2048]`` or, with ``pooled=False``, ``[B, 2048, h, w]``."""
    model = torchvision.models.resnet50(weights=None)
    model.fc = nn.Identity()
    load_weights(
        model,
        weights,
        drop_prefixes=("fc.",),
        trust_checkpoint=trust_checkpoint,
        expected_file="lvmmed_resnet.torch (LVM-Med ResNet-50)",
    )
    return make_teacher(ResNetTrunk(model, pooled), "lvmmed_resnet50", input_size, mean, std)


def sam_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SAM ``ImageEncoderViT`` keys -> timm ``VisionTransformerSAM`` keys (``mlp.lin1`` -> ``mlp.fc1`` ...)."""
    if any(k.startswith("image_encoder.") for k in state):
        state = select_prefix(state, "image_encoder.")
    return {k.replace(".mlp.lin1.", ".mlp.fc1.").replace(".mlp.lin2.", ".mlp.fc2."): v for k, v in state.items()}


class SAMViTFeatures(nn.Module):
    """Block outputs of a timm ``VisionTransformerSAM`` without the neck.

    Shapes: ``[B, 3, H, W] -> [B, 768]`` (``pooled``: mean over the ``H/16 x W/16`` positions of the last
    block's output) or ``[B, 768, H/16, W/16]``.
    """

    def __init__(self, vit: nn.Module, pooled: bool = True) -> None:
        super().__init__()
        self.vit = vit
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.vit
        x = v.patch_embed(x)  # [B, h, w, C]
        if v.pos_embed is not None:
            raise ValueError("SAMViTFeatures expects use_abs_pos=False (LVM-Med's encoder has no pos_embed).")
        x = v.norm_pre(v.patch_drop(v.pos_drop(x)))
        x = v.blocks(x)
        return x.mean(dim=(1, 2)) if self.pooled else x.permute(0, 3, 1, 2)


@TEACHERS.register("lvmmed_vit_b")
def lvmmed_vit_b(
    weights: str | os.PathLike | None = None,
    pooled: bool = True,
    input_size: int = 224,
    img_size: int = 1024,
    depth: int = 12,
    global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
    window_size: int = 14,
    trust_checkpoint: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> FrozenTeacher:
    """LVM-Med ViT-B (``lvmmed_vit.pth``, a SAM ViT-B image encoder): ``[B, 768]`` or ``[B, 768, h, w]``.

    Args:
        weights: ``lvmmed_vit.pth``; ``None`` gives random weights.
        input_size: side inputs are resized to (224; relative position tables are interpolated by timm as in SAM).
        img_size, depth, global_attn_indexes, window_size: the architecture (SAM ViT-B defaults); change them only
            for small test checkpoints built the same way.
    """
    import timm

    vit = timm.create_model(
        "samvit_base_patch16",
        pretrained=False,
        num_classes=0,
        use_abs_pos=False,
        img_size=img_size,
        depth=depth,
        global_attn_indexes=tuple(global_attn_indexes),
        window_size=window_size,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),  # as SAM's build_sam_vit_b (timm's default is 1e-5)
    )
    load_weights(
        vit,
        weights,
        trust_checkpoint=trust_checkpoint,
        remap=sam_to_timm,
        expected_file="lvmmed_vit.pth (LVM-Med ViT-B, a SAM image encoder)",
    )
    return make_teacher(SAMViTFeatures(vit, pooled), "lvmmed_vit_b", input_size, mean, std)

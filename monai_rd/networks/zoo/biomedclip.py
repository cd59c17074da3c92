"""BiomedCLIP's visual tower (Zhang et al. 2023): timm ``vit_base_patch16_224`` inside open_clip.

``open_clip_pytorch_model.bin`` is the state dict of the whole open_clip model: ``visual.trunk.*`` (the timm
ViT), ``visual.head.proj.weight`` (768 -> 512 projection), ``text.*`` (PubMedBERT) and ``logit_scale``. The
teacher keeps ``visual.trunk.*`` (strict) and returns the trunk's pooled feature: the class token after the final
LayerNorm, 768 wide (``pooled=False``: the patch tokens as a ``[B, 768, h, w]`` map).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_rd.networks.checkpoint import load_weights, select_prefix
from monai_rd.networks.nets.teachers import TEACHERS, FrozenTeacher
from monai_rd.networks.zoo.common import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, make_teacher

__all__ = ["biomedclip_vit_b", "ViTTokens"]


class ViTTokens(nn.Module):
    """A timm ``VisionTransformer`` (``num_classes=0``): pooled ``[B, D]`` or patch-token map ``[B, D, h, w]``."""

    def __init__(self, vit: nn.Module, pooled: bool = True) -> None:
        super().__init__()
        self.vit = vit
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooled:
            return self.vit(x)
        tokens = self.vit.forward_features(x)[:, self.vit.num_prefix_tokens :]  # [B, h*w, D]
        h, w = self.vit.patch_embed.dynamic_feat_size(x.shape[-2:])
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)


def _trunk(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return select_prefix(state, "visual.trunk.") if any(k.startswith("visual.trunk.") for k in state) else state


@TEACHERS.register("biomedclip_vit_b")
def biomedclip_vit_b(
    weights: str | os.PathLike | None = None,
    pooled: bool = True,
    input_size: int = 224,
    img_size: int | None = None,
    trust_checkpoint: bool = False,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> FrozenTeacher:
    """BiomedCLIP ViT-B/16 (``open_clip_pytorch_model.bin``): ``[B, 768]`` class token, or a patch map.

    Args:
        img_size: the architecture's resolution (fixes ``pos_embed``); defaults to ``input_size``.
    """
    import timm

    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, img_size=img_size or input_size)
    load_weights(
        vit,
        weights,
        trust_checkpoint=trust_checkpoint,
        remap=_trunk,
        expected_file="open_clip_pytorch_model.bin (BiomedCLIP)",
    )
    return make_teacher(ViTTokens(vit, pooled), "biomedclip_vit_b", input_size, mean, std)

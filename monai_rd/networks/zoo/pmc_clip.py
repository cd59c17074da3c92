"""PMC-CLIP's visual encoder: the CLIP ``ModifiedResNet`` (RN50 layout) and its checkpoint loader.

PMC-CLIP (Lin et al. 2023) distributes the image tower in two files:

- ``image_encoder(resnet50).pth``: a plain state dict of the visual tower (``conv1.weight`` ``[32, 3, 3, 3]``,
  ``layer1.0.conv1.weight`` ..., ``attnpool.positional_embedding`` ``[50, 2048]``, ``attnpool.c_proj.weight``
  ``[768, 2048]``);
- ``checkpoint.pt``: the training checkpoint ``{"state_dict": {"module.visual.*": ..., "module.text_encoder.*":
  ...}, ...}`` whose other towers are ignored.

The architecture is CLIP's ``ModifiedResNet(layers=[3, 4, 6, 3], output_dim=768, heads=32, image_size=224,
width=64)``: a three-convolution stem with an average pool, anti-aliased strided bottlenecks (an average pool
before the strided convolutions) and an attention pool. torchvision's ResNet-50 cannot load it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_rd.networks.checkpoint import load_weights, select_prefix
from monai_rd.networks.nets.teachers import TEACHERS, FrozenTeacher
from monai_rd.networks.zoo.common import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, global_avg_pool, make_teacher

__all__ = ["CLIPBottleneck", "AttentionPool2d", "ModifiedResNet", "pmc_clip_rn50"]

PMC_CLIP_FILES = "image_encoder(resnet50).pth or checkpoint.pt (PMC-CLIP)"


class CLIPBottleneck(nn.Module):
    """CLIP bottleneck: every convolution has stride 1; a stride ``s`` block average-pools by ``s`` after
    ``conv2`` and on the shortcut (``downsample = [AvgPool2d(s), 1x1 conv, BN]``).

    Shapes: ``[B, inplanes, H, W] -> [B, 4 * planes, H / stride, W / stride]``.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool: nn.Module = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride > 1 or inplanes != planes * self.expansion:
            # key names "downsample.0" / "downsample.1" as in the released weights; "-1" holds no parameters
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride) if stride > 1 else nn.Identity()),
                        ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False)),
                        ("1", nn.BatchNorm2d(planes * self.expansion)),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class AttentionPool2d(nn.Module):
    """CLIP's attention pool: the mean token (plus a learned position embedding) attends over all tokens.

    Args:
        spatial_dim: side of the input grid (``image_size // 32``); fixes ``positional_embedding``
            ``[spatial_dim**2 + 1, embed_dim]``.
        embed_dim: channels of the input map.
        num_heads: attention heads.
        output_dim: width of the output projection ``c_proj``.

    Shapes: ``[B, embed_dim, spatial_dim, spatial_dim] -> [B, output_dim]``.
    """

    def __init__(self, spatial_dim: int, embed_dim: int, num_heads: int, output_dim: int | None = None) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spatial_dim**2 + 1, embed_dim) / embed_dim**0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if h * w + 1 != self.positional_embedding.shape[0]:
            raise ValueError(
                f"AttentionPool2d was built for a {int((self.positional_embedding.shape[0] - 1) ** 0.5)}^2 grid, got "
                f"{h}x{w}: feed images of the teacher's input_size."
            )
        tokens = x.flatten(2).transpose(1, 2)  # [B, hw, C]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1) + self.positional_embedding
        heads, d = self.num_heads, c // self.num_heads
        q = self.q_proj(tokens[:, :1]).view(b, 1, heads, d).transpose(1, 2)  # only the pooled token is read out
        k = self.k_proj(tokens).view(b, -1, heads, d).transpose(1, 2)
        v = self.v_proj(tokens).view(b, -1, heads, d).transpose(1, 2)
        attn = torch.softmax((q * d**-0.5) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, c)
        return self.c_proj(out)


class ModifiedResNet(nn.Module):
    """CLIP's ModifiedResNet image tower (parameter names as in OpenAI CLIP / open_clip / PMC-CLIP).

    Args:
        layers: bottlenecks per stage (``[3, 4, 6, 3]`` for RN50).
        output_dim: width of the attention-pool output (768 for PMC-CLIP).
        heads: attention-pool heads (32 for PMC-CLIP).
        image_size: training resolution; fixes the attention pool's position embedding (``image_size // 32``).
        width: stem width (64); ``layer4`` has ``32 * width`` channels.

    Shapes: ``forward_features``: ``[B, 3, H, W] -> [B, 32*width, H/32, W/32]``; ``forward``:
    ``[B, 3, image_size, image_size] -> [B, output_dim]``.
    """

    def __init__(
        self, layers: Sequence[int], output_dim: int, heads: int, image_size: int = 224, width: int = 64
    ) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.image_size = image_size
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        self.relu = nn.ReLU(inplace=True)
        inplanes = width
        stages = []
        for i, blocks in enumerate(layers):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            stage = [CLIPBottleneck(inplanes, planes, stride)]
            inplanes = planes * CLIPBottleneck.expansion
            stage += [CLIPBottleneck(inplanes, planes) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attnpool = AttentionPool2d(image_size // 32, width * 32, heads, output_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.avgpool(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attnpool(self.forward_features(x))


class CLIPVisualFeatures(nn.Module):
    """Features of a :class:`ModifiedResNet`: ``pool="avg"`` (layer4 GAP, ``[B, 2048]``), ``"attn"`` (the
    attention pool, ``[B, 768]``) or ``None`` (the layer4 map ``[B, 2048, h, w]``)."""

    def __init__(self, visual: ModifiedResNet, pool: str | None = "avg") -> None:
        super().__init__()
        if pool not in ("avg", "attn", None):
            raise ValueError(f"pool must be 'avg', 'attn' or None, got {pool!r}.")
        self.visual = visual
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool == "attn":
            return self.visual(x)
        f = self.visual.forward_features(x)
        return global_avg_pool(f) if self.pool == "avg" else f


def _visual_tower(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``checkpoint.pt`` (``visual.*`` after ``module.`` is stripped) -> the visual tower; a plain file as is."""
    if any(k.startswith("visual.") for k in state):
        return select_prefix(state, "visual.")
    return state


@TEACHERS.register("pmc_clip_rn50")
def pmc_clip_rn50(
    weights: str | os.PathLike | None = None,
    pool: str = "avg",
    pooled: bool = True,
    input_size: int = 224,
    image_size: int | None = None,
    trust_checkpoint: bool = False,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> FrozenTeacher:
    """PMC-CLIP's image encoder (CLIP ModifiedResNet-50) as a frozen teacher.

    Args:
        weights: ``image_encoder(resnet50).pth`` or ``checkpoint.pt``; ``None`` gives random weights.
        pool: ``"avg"`` (layer4 global average, 2048) or ``"attn"`` (CLIP attention pool, 768).
        pooled: ``False`` returns the layer4 map ``[B, 2048, input_size/32, input_size/32]``.
        input_size: side every input is resized to (224 as trained).
        image_size: the architecture's training resolution (fixes the attention pool's position embedding,
            ``[(image_size/32)**2 + 1, 2048]``); defaults to ``input_size``.
        trust_checkpoint: allow pickle for files that need it.
        mean, std: OpenAI CLIP normalisation, RGB.
    """
    visual = ModifiedResNet([3, 4, 6, 3], output_dim=768, heads=32, image_size=image_size or input_size, width=64)
    load_weights(visual, weights, trust_checkpoint=trust_checkpoint, remap=_visual_tower, expected_file=PMC_CLIP_FILES)
    model = CLIPVisualFeatures(visual, pool if pooled else None)
    return make_teacher(model, "pmc_clip_rn50", input_size, mean, std)

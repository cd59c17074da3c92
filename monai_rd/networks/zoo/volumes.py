"""3D foundation encoders from the files their authors publish, loaded strictly.

- ``swin_unetr_ssl``: MONAI's self-supervised Swin UNETR encoder, ``model_swinvit.pt`` from MONAI's
  research-contributions (SwinUNETR/Pretrain): ``{"state_dict": {"module.patch_embed.proj.weight",
  "module.layers1.0.blocks.0.mlp.fc1.weight", ... "module.layers4.0.downsample.reduction.weight"}}``, the keys of
  the pre-training ``swinViT`` saved under ``DataParallel`` with the MLP named ``fc1``/``fc2`` (today's MONAI names
  them ``linear1``/``linear2``). The tutorials remap ``module.`` -> ``swinViT.`` and load with ``strict=False``;
  here the same remap is followed by a strict load into ``SwinUNETR(...).swinViT`` (feature size 48). Features:
  the last stage, layer-normalised (``swinViT(x, normalize=True)[-1]``), ``[B, 768, D/32, H/32, W/32]`` or its
  global average ``[B, 768]``. Input: CT windowed to ``[0, 1]`` (the pre-training used a -1000..1000 HU window
  scaled to [0, 1]), side divisible by 32 (default 96, the pre-training crop).
- ``medicalnet_resnet10`` / ``_18`` / ``_50``: Tencent MedicalNet ``resnet_{10,18,50}_23dataset.pth``,
  ``{"state_dict": {"module.conv1.weight", "module.layer1.0.conv1.weight", ...}}`` (``DataParallel`` keys, no
  head), loaded into MONAI's ``resnet10/18/50(spatial_dims=3, n_input_channels=1, feed_forward=False)`` with the
  shortcut/bias settings of :func:`monai.networks.nets.resnet.get_medicalnet_pretrained_resnet_args` and the
  stem stride 2 of the original. ``dilated=True`` (default) runs layer3/layer4 as the authors built them
  (stride 1, dilation 2 and 4: ``[B, C, D/8, H/8, W/8]`` maps); ``dilated=False`` uses MONAI's strided layout.
  Input: z-score of the non-zero voxels per volume (MedicalNet's normalisation).
- ``models_genesis``: Models Genesis ``Genesis_Chest_CT.pt``, ``{"state_dict": {"module.down_tr64.ops.0.conv1.weight",
  ... "module.up_tr256.up_conv.weight", ... "module.out_tr.final_conv.weight"}}`` (the official PyTorch UNet3D
  under ``DataParallel``); the encoder (``down_tr64 .. down_tr512``) is kept, the decoder entries (``up_tr*``,
  ``out_tr``) are dropped by name, the rest loaded strictly. Features: ``down_tr512``, ``[B, 512, D/8, H/8, W/8]``
  or its global average (what the authors' classification target network pools). The authors' BatchNorm
  (``ContBatchNorm3d``) always normalises with the statistics of the batch it sees; the teacher keeps that
  (``batch_statistics=True``) but computes them per volume, so a volume's features never depend on its
  batch-mates (a pure function of the volume, as the feature cache needs). Input: CT windowed to ``[0, 1]``
  (-1000..1000 HU), side divisible by 8 (default 64, the pre-training crop side).
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.networks.checkpoint import load_state_dict_strict, read_state_dict
from monai_rd.networks.nets.teachers import TEACHERS
from monai_rd.networks.nets.volume_teachers import FrozenVolumeTeacher
from monai_rd.networks.zoo.common import global_avg_pool
from monai_rd.networks.zoo.trunks import ResNetTrunk

__all__ = [
    "SwinViTFeatures",
    "MedicalNetFeatures",
    "GenesisEncoder",
    "swin_unetr_ssl",
    "medicalnet_resnet",
    "models_genesis",
    "remap_swinvit",
    "remap_medicalnet",
    "remap_models_genesis",
]


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


# ---------------------------------------------------------------------------------------------- SwinUNETR SSL
class SwinViTFeatures(nn.Module):
    """``swinViT(x, normalize=True)[-1]``: ``[B, C, D, H, W] -> [B, 16*feature_size, D/32, H/32, W/32]`` or pooled."""

    def __init__(self, swin_vit: nn.Module, pooled: bool = True) -> None:
        super().__init__()
        self.swinViT = swin_vit
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.swinViT(x, normalize=True)[-1]
        return global_avg_pool(f) if self.pooled else f


def remap_swinvit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of ``model_swinvit.pt`` -> keys of MONAI's ``SwinUNETR.swinViT``.

    Accepts the released ``module.<swin key>`` layout, the pre-training ``SSLHead`` layout (``swinViT.*`` or
    ``module.swinViT.*``, whose SSL heads ``rotation_*``, ``contrastive_*``, ``conv.*`` are dropped by name) and
    the ``swin_vit`` spelling; renames the legacy MLP ``fc1``/``fc2`` to ``linear1``/``linear2``.
    """
    state = _strip(state, "module.")
    if any(k.startswith(("swinViT.", "swin_vit.")) for k in state):
        heads = ("rotation_pre.", "rotation_head.", "contrastive_pre.", "contrastive_head.", "conv.")
        state = {k: v for k, v in state.items() if not k.startswith(heads)}
        state = _strip(_strip(state, "swinViT."), "swin_vit.")
    return {k.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2."): v for k, v in state.items()}


@TEACHERS.register("swin_unetr_ssl")
def swin_unetr_ssl(
    weights: str | os.PathLike | None = None,
    pooled: bool = True,
    input_size: int | None = 96,
    feature_size: int = 48,
    trust_checkpoint: bool = False,
) -> FrozenVolumeTeacher:
    """MONAI's self-supervised Swin UNETR encoder (``model_swinvit.pt``) as a frozen volume teacher."""
    from monai.networks.nets import SwinUNETR

    if input_size is not None and input_size % 32:
        raise ValueError(f"swin_unetr_ssl needs an input side divisible by 32, got input_size={input_size}.")
    swin = SwinUNETR(in_channels=1, out_channels=1, feature_size=feature_size, spatial_dims=3).swinViT
    if weights is not None:
        state = remap_swinvit(read_state_dict(weights, trust_checkpoint=trust_checkpoint))
        load_state_dict_strict(swin, state, os.fspath(weights), expected_file="model_swinvit.pt (SwinUNETR/Pretrain)")
    return FrozenVolumeTeacher(SwinViTFeatures(swin, pooled), "swin_unetr_ssl", 1, input_size, "identity")


# ---------------------------------------------------------------------------------------------- MedicalNet
#: MONAI's 3D ``ResNet`` has the stem and stages of :class:`ResNetTrunk`: ``[B, 1, D, H, W] -> [B, C, d, h, w]``
#: or pooled ``[B, C]``
MedicalNetFeatures = ResNetTrunk


def _dilate(layer: nn.Sequential, dilation: int) -> None:
    """Turn a strided MONAI ResNet stage into MedicalNet's dilated one (stride 1, 3x3x3 convs dilated) in place."""
    for module in layer.modules():
        if isinstance(module, nn.Conv3d):
            module.stride = (1, 1, 1)
            if module.kernel_size == (3, 3, 3):
                module.dilation = (dilation,) * 3
                module.padding = (dilation,) * 3
        elif isinstance(getattr(module, "downsample", None), functools.partial):  # shortcut "A": pool + zero pad
            module.downsample = functools.partial(module.downsample.func, **{**module.downsample.keywords, "stride": 1})


def remap_medicalnet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``module.conv1.weight`` (DataParallel) -> ``conv1.weight`` (MONAI's ResNet names are MedicalNet's)."""
    return _strip(state, "module.")


def medicalnet_resnet(
    depth: int,
    weights: str | os.PathLike | None = None,
    pooled: bool = True,
    dilated: bool = True,
    input_size: int | None = None,
    trust_checkpoint: bool = False,
) -> FrozenVolumeTeacher:
    """MedicalNet ResNet-``depth`` (``resnet_<depth>_23dataset.pth``) as a frozen volume teacher."""
    import monai.networks.nets.resnet as mresnet

    if depth not in (10, 18, 34, 50, 101, 152, 200):
        raise ValueError(f"MedicalNet has ResNet depths 10, 18, 34, 50, 101, 152, 200; got {depth}.")
    bias_downsample, shortcut_type = mresnet.get_medicalnet_pretrained_resnet_args(depth)
    model = getattr(mresnet, f"resnet{depth}")(
        spatial_dims=3,
        n_input_channels=1,
        feed_forward=False,
        shortcut_type=shortcut_type,
        bias_downsample=bias_downsample,
        conv1_t_size=7,
        conv1_t_stride=2,
    )
    if dilated:
        _dilate(model.layer3, 2)
        _dilate(model.layer4, 4)
    if weights is not None:
        state = remap_medicalnet(read_state_dict(weights, trust_checkpoint=trust_checkpoint))
        load_state_dict_strict(model, state, os.fspath(weights), expected_file=f"resnet_{depth}_23dataset.pth")
    name = f"medicalnet_resnet{depth}"
    return FrozenVolumeTeacher(MedicalNetFeatures(model, pooled), name, 1, input_size, "zscore")


for _depth in (10, 18, 50):
    TEACHERS.register(f"medicalnet_resnet{_depth}", lambda _d=_depth, **kw: medicalnet_resnet(_d, **kw))


# ---------------------------------------------------------------------------------------------- Models Genesis
class _GenesisBatchNorm(nn.BatchNorm3d):
    """BatchNorm with the authors' parameter names; ``batch_statistics`` normalises with the input's own statistics
    (``ContBatchNorm3d``) without touching the stored running statistics."""

    batch_statistics = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.batch_statistics:
            return super().forward(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class _LUConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn1 = _GenesisBatchNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)))


class _Down(nn.Module):
    def __init__(self, in_channels: int, depth: int) -> None:
        super().__init__()
        width = 32 * 2**depth
        self.ops = nn.Sequential(_LUConv(in_channels, width), _LUConv(width, 2 * width))
        self.pool = depth < 3  # the deepest stage is not pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ops(x)
        return F.max_pool3d(x, 2) if self.pool else x


class GenesisEncoder(nn.Module):
    """The encoder of Models Genesis' UNet3D (ReLU), parameter names as in the authors' code.

    Shapes: ``[B, 1, D, H, W] -> [B, 512, D/8, H/8, W/8]`` or pooled ``[B, 512]``. With ``batch_statistics``
    each volume is normalised by its own statistics (run one volume at a time).
    """

    def __init__(self, pooled: bool = True, batch_statistics: bool = True) -> None:
        super().__init__()
        self.down_tr64 = _Down(1, 0)
        self.down_tr128 = _Down(64, 1)
        self.down_tr256 = _Down(128, 2)
        self.down_tr512 = _Down(256, 3)
        self.pooled = pooled
        self.batch_statistics = batch_statistics
        for m in self.modules():
            if isinstance(m, _GenesisBatchNorm):
                m.batch_statistics = batch_statistics

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down_tr512(self.down_tr256(self.down_tr128(self.down_tr64(x))))
        return global_avg_pool(x) if self.pooled else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch_statistics:
            return torch.cat([self._encode(x[i : i + 1]) for i in range(x.shape[0])])
        return self._encode(x)


def remap_models_genesis(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``module.down_tr64...`` -> ``down_tr64...``; the decoder (``up_tr256/128/64``, ``out_tr``) dropped by name."""
    state = _strip(state, "module.")
    return {k: v for k, v in state.items() if not k.startswith(("up_tr256.", "up_tr128.", "up_tr64.", "out_tr."))}


@TEACHERS.register("models_genesis")
def models_genesis(
    weights: str | os.PathLike | None = None,
    pooled: bool = True,
    batch_statistics: bool = True,
    input_size: int | None = 64,
    trust_checkpoint: bool = False,
) -> FrozenVolumeTeacher:
    """Models Genesis (``Genesis_Chest_CT.pt``) encoder as a frozen volume teacher."""
    if input_size is not None and input_size % 8:
        raise ValueError(f"models_genesis needs an input side divisible by 8, got input_size={input_size}.")
    model = GenesisEncoder(pooled=pooled, batch_statistics=batch_statistics)
    if weights is not None:
        state = remap_models_genesis(read_state_dict(weights, trust_checkpoint=trust_checkpoint))
        load_state_dict_strict(model, state, os.fspath(weights), expected_file="Genesis_Chest_CT.pt (Models Genesis)")
    return FrozenVolumeTeacher(model, "models_genesis", 1, input_size, "identity")

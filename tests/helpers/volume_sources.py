"""Source architectures of the 3D teachers, written from the authors' published code (not from monai_rd), to
fabricate checkpoints exactly as their authors save them and to compute reference outputs.

- :class:`TencentResNet3D`: Tencent MedicalNet ``models/resnet.py`` (stem stride 2, layer3/layer4 dilated 2/4,
  shortcut "A" = avg-pool + zero channel pad, "B" = 1x1 conv + BN), saved under ``DataParallel`` as
  ``{"state_dict": {"module.conv1.weight", ...}}``.
- :class:`GenesisUNet3D`: Models Genesis ``pytorch/unet3d.py`` (``ContBatchNorm3d`` always uses batch statistics),
  saved as ``{"state_dict": {"module.down_tr64.ops.0.conv1.weight", ...}}``.
- :func:`save_swinvit`: MONAI's Swin transformer saved as ``model_swinvit.pt`` (``module.`` keys, legacy
  ``mlp.fc1``/``mlp.fc2`` names).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = _conv3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class _ShortcutA(nn.Module):
    def __init__(self, planes, stride):
        super().__init__()
        self.planes, self.stride = planes, stride

    def forward(self, x):
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        pad = torch.zeros(out.shape[0], self.planes - out.shape[1], *out.shape[2:], dtype=out.dtype)
        return torch.cat([out, pad], dim=1)


class TencentResNet3D(nn.Module):
    """MedicalNet's backbone (no segmentation head): ``[B, 1, D, H, W] -> layer4 map``."""

    def __init__(self, depth: int):
        super().__init__()
        block, layers, shortcut = {
            10: (_Basic, [1, 1, 1, 1], "B"),
            18: (_Basic, [2, 2, 2, 2], "A"),
            50: (_Bottleneck, [3, 4, 6, 3], "B"),
        }[depth]
        self.cin = 64
        self.conv1 = nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self.layer1 = self._layer(block, 64, layers[0], shortcut)
        self.layer2 = self._layer(block, 128, layers[1], shortcut, stride=2)
        self.layer3 = self._layer(block, 256, layers[2], shortcut, stride=1, dilation=2)
        self.layer4 = self._layer(block, 512, layers[3], shortcut, stride=1, dilation=4)

    def _layer(self, block, planes, blocks, shortcut, stride=1, dilation=1):
        down = None
        if stride != 1 or self.cin != planes * block.expansion:
            if shortcut == "A":
                down = _ShortcutA(planes * block.expansion, stride)
            else:
                down = nn.Sequential(
                    nn.Conv3d(self.cin, planes * block.expansion, 1, stride=stride, bias=False),
                    nn.BatchNorm3d(planes * block.expansion),
                )
        mods = [block(self.cin, planes, stride, dilation, down)]
        self.cin = planes * block.expansion
        mods += [block(self.cin, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class _ContBN(nn.modules.batchnorm._BatchNorm):
    def forward(self, x):
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum, self.eps
        )


class _LU(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1)
        self.bn1 = _ContBN(cout)
        self.activation = nn.ReLU()

    def forward(self, x):
        return self.activation(self.bn1(self.conv1(x)))


def _n_conv(cin, depth, double=False):
    w = 32 * 2 ** (depth + 1) if double else 32 * 2**depth
    return nn.Sequential(_LU(cin, w), _LU(w, w if double else 2 * w))


class _DownT(nn.Module):
    def __init__(self, cin, depth):
        super().__init__()
        self.ops = _n_conv(cin, depth)
        self.maxpool = nn.MaxPool3d(2)
        self.depth = depth

    def forward(self, x):
        out = self.ops(x)
        return (out, out) if self.depth == 3 else (self.maxpool(out), out)


class _UpT(nn.Module):
    def __init__(self, cin, cout, depth):
        super().__init__()
        self.up_conv = nn.ConvTranspose3d(cin, cout, 2, stride=2)
        self.ops = _n_conv(cin + cout // 2, depth, double=True)

    def forward(self, x, skip):
        return self.ops(torch.cat([self.up_conv(x), skip], 1))


class _OutT(nn.Module):
    def __init__(self, cin, n):
        super().__init__()
        self.final_conv = nn.Conv3d(cin, n, 1)

    def forward(self, x):
        return torch.sigmoid(self.final_conv(x))


class GenesisUNet3D(nn.Module):
    """Models Genesis UNet3D; ``encode`` returns ``down_tr512``'s output (``out512``)."""

    def __init__(self):
        super().__init__()
        self.down_tr64, self.down_tr128 = _DownT(1, 0), _DownT(64, 1)
        self.down_tr256, self.down_tr512 = _DownT(128, 2), _DownT(256, 3)
        self.up_tr256, self.up_tr128, self.up_tr64 = _UpT(512, 512, 2), _UpT(256, 256, 1), _UpT(128, 128, 0)
        self.out_tr = _OutT(64, 1)

    def encode(self, x):
        out = self.down_tr64(x)[0]
        out = self.down_tr128(out)[0]
        out = self.down_tr256(out)[0]
        return self.down_tr512(out)[0]


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that a wrong load cannot pass."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(1 + 0.5 * torch.rand(m.running_var.shape, generator=g))
    return model.eval()


def save_data_parallel(model: nn.Module, path, **extra) -> None:
    """``torch.save({"state_dict": DataParallel(model).state_dict(), ...})``: every key prefixed ``module.``."""
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, **extra}, path)


def save_swinvit(swin_vit: nn.Module, path) -> None:
    """``model_swinvit.pt``: the pre-trained Swin transformer under DataParallel, MLP keys named ``fc1``/``fc2``."""
    state = {
        "module." + k.replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2."): v
        for k, v in swin_vit.state_dict().items()
    }
    torch.save({"epoch": 100, "state_dict": state}, path)

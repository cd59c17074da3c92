"""Keras HDF5 weight files (read with h5py, no TensorFlow) and their PyTorch counterparts.

A Keras ``.h5`` weights file (``model.save_weights`` or ``model.save``, which nests the same layout under
``model_weights/``) lists its layers in the root attribute ``layer_names``; each layer group lists its arrays in
the attribute ``weight_names`` (``"conv1_conv/kernel:0"``, ``"conv1_bn/gamma:0"`` ...). Convolution kernels are
stored ``[kh, kw, in, out]`` (HWIO); PyTorch wants ``[out, in, kh, kw]`` (OIHW).
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch
import torch.nn as nn

__all__ = [
    "KERAS_BN_EPS",
    "read_keras_h5",
    "KerasBottleneck",
    "KerasResNet50",
    "keras_resnet50_to_torch",
    "keras_densenet121_to_torch",
]

#: Keras ResNet50/DenseNet121 BatchNormalization epsilon (PyTorch's default is 1e-5).
KERAS_BN_EPS = 1.001e-5


def read_keras_h5(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read a Keras HDF5 weights file into ``{layer_name: {weight_name: array}}``.

    ``weight_name`` is the last component of the stored name without the ``:0`` suffix (``kernel``, ``bias``,
    ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``). Layers without weights are omitted.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a Keras weights file (no ``layer_names`` attribute).
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Keras weights file {path!r} does not exist; pass the path of a local .h5 file.")
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(f"{path!r} is not a Keras HDF5 weights file: it has no 'layer_names' attribute.")
        for raw in root.attrs["layer_names"]:
            layer = raw.decode() if isinstance(raw, bytes) else str(raw)
            group = root[layer]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
            if not names:
                continue
            weights = {}
            for name in names:
                short = name.rsplit("/", 1)[-1].split(":", 1)[0]
                weights[short] = np.asarray(group[name])
            out[layer] = weights
    return out


def _conv(state: dict, prefix: str, layer: dict[str, np.ndarray]) -> None:
    state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(layer["kernel"].transpose(3, 2, 0, 1)))
    if "bias" in layer:
        state[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(layer["bias"]))


def _bn(state: dict, prefix: str, layer: dict[str, np.ndarray]) -> None:
    for keras_name, torch_name in (
        ("gamma", "weight"),
        ("beta", "bias"),
        ("moving_mean", "running_mean"),
        ("moving_variance", "running_var"),
    ):
        state[f"{prefix}.{torch_name}"] = torch.from_numpy(np.ascontiguousarray(layer[keras_name]))
    state[f"{prefix}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)


# Keras ResNet50 layer names -> KerasResNet50 (torchvision-like) parameter prefixes.
# convS_blockB_*: stage S (2..5) is layerS-1, block B (1-based) is index B-1; _0_ is the projection shortcut.
_RESNET50_RULES = [
    (r"conv1_conv", "conv1", "conv"),
    (r"conv1_bn", "bn1", "bn"),
    (r"conv(\d)_block(\d+)_0_conv", "layer{0}.{1}.downsample.0", "conv"),
    (r"conv(\d)_block(\d+)_0_bn", "layer{0}.{1}.downsample.1", "bn"),
    (r"conv(\d)_block(\d+)_([123])_conv", "layer{0}.{1}.conv{2}", "conv"),
    (r"conv(\d)_block(\d+)_([123])_bn", "layer{0}.{1}.bn{2}", "bn"),
]

# Keras DenseNet121 layer names -> torchvision densenet121 ``features`` prefixes.
_DENSENET121_RULES = [
    (r"conv1/conv", "conv0", "conv"),
    (r"conv1/bn", "norm0", "bn"),
    (r"conv(\d)_block(\d+)_0_bn", "denseblock{0}.denselayer{1}.norm1", "bn"),
    (r"conv(\d)_block(\d+)_1_conv", "denseblock{0}.denselayer{1}.conv1", "conv"),
    (r"conv(\d)_block(\d+)_1_bn", "denseblock{0}.denselayer{1}.norm2", "bn"),
    (r"conv(\d)_block(\d+)_2_conv", "denseblock{0}.denselayer{1}.conv2", "conv"),
    (r"pool(\d)_bn", "transition{0}.norm", "bn"),
    (r"pool(\d)_conv", "transition{0}.conv", "conv"),
    (r"bn", "norm5", "bn"),
]


def _convert(
    layers: dict[str, dict[str, np.ndarray]],
    rules: list[tuple[str, str, str]],
    path: str,
    stage_offset: int,
    block_offset: int,
) -> dict[str, torch.Tensor]:
    """Apply ``(regex, torch_prefix_template, kind)`` rules to every Keras layer holding weights.

    The first two captured integers (stage, block) are shifted by the offsets; a layer no rule matches is an error.
    """
    state: dict[str, torch.Tensor] = {}
    unknown = []
    for name, weights in layers.items():
        for pattern, template, kind in rules:
            m = re.fullmatch(pattern, name)
            if m:
                g = [int(x) for x in m.groups()]
                if len(g) >= 1:
                    g[0] += stage_offset
                if len(g) >= 2:
                    g[1] += block_offset
                (_conv if kind == "conv" else _bn)(state, template.format(*g), weights)
                break
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(
            f"Keras file {path!r} has layers this architecture does not know: {', '.join(unknown[:10])}"
            + (f" ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
            + ". Is it the *_notop.h5 file of the expected network?"
        )
    return state


def keras_resnet50_to_torch(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Keras ``ResNet50`` weights (``RadImageNet-ResNet50_notop.h5``) -> a :class:`KerasResNet50` state dict."""
    # conv2_block1 -> layer1.0: stage - 1, block - 1
    return _convert(read_keras_h5(path), _RESNET50_RULES, os.fspath(path), -1, -1)


def keras_densenet121_to_torch(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Keras ``DenseNet121`` weights (``RadImageNet-DenseNet121_notop.h5``) -> torchvision ``densenet121.features``.

    Keras ``convS_blockB`` (S = 2..5, B from 1) is torchvision ``denseblock{S-1}.denselayer{B}``; ``poolS`` is
    ``transition{S-1}``. The BatchNorm epsilon must be set to :data:`KERAS_BN_EPS` on the PyTorch side.
    """
    return _convert(read_keras_h5(path), _DENSENET121_RULES, os.fspath(path), -1, 0)


class KerasBottleneck(nn.Module):
    """Keras ResNet50 bottleneck: convolutions with biases, the stride on the first 1x1 convolution,
    BatchNorm epsilon 1.001e-5; the projection shortcut is ``downsample = [1x1 conv (stride), BN]``.

    Shapes: ``[B, inplanes, H, W] -> [B, 4 * planes, H / stride, W / stride]``.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=True)
        self.bn1 = nn.BatchNorm2d(planes, eps=KERAS_BN_EPS)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes, eps=KERAS_BN_EPS)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, eps=KERAS_BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * self.expansion, 1, stride=stride, bias=True),
                nn.BatchNorm2d(planes * self.expansion, eps=KERAS_BN_EPS),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class KerasResNet50(nn.Module):
    """Keras ``applications.ResNet50`` (v1) in PyTorch, torchvision attribute names, biases on every conv.

    This is the layout of the Keras RadImageNet weights and of their PyTorch conversion
    (``conv1.bias``, ``layer1.0.conv1.bias`` ...). The stem's zero padding before the max pool equals PyTorch's
    ``-inf`` padding because it follows a ReLU.

    Shapes: ``[B, 3, H, W] -> [B, 2048, H/32, W/32]`` (``forward`` returns layer4; no pooling, no classifier).
    """

    def __init__(self, layers=(3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(64, eps=KERAS_BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        stages = []
        for i, blocks in enumerate(layers):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            stage = [KerasBottleneck(inplanes, planes, stride)]
            inplanes = planes * 4
            stage += [KerasBottleneck(inplanes, planes) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

"""RadImageNet ResNet-50 and DenseNet-121 (Mei et al. 2022) from the files the authors distribute.

Three formats are read:

- ``"pytorch"``: the official PyTorch release ``ResNet50.pt`` / ``DenseNet121.pt``, the state dict of a wrapper
  whose ``backbone`` is ``nn.Sequential(*list(model.children())[:-1])`` of the torchvision network: keys
  ``backbone.0.weight`` (conv1), ``backbone.1.*`` (bn1), ``backbone.4.0.conv1.weight`` (layer1) ... for ResNet-50,
  ``backbone.0.conv0.weight`` ... (``features``) for DenseNet-121. Loaded into torchvision after remapping;
  ImageNet mean/std, RGB.
- ``"keras_h5"``: ``RadImageNet-ResNet50_notop.h5`` / ``RadImageNet-DenseNet121_notop.h5`` read with h5py
  (Keras layer names ``conv1_conv``, ``conv2_block1_1_conv`` ... / ``conv1/conv``, ``conv2_block1_0_bn`` ...).
- ``"keras_converted"`` (ResNet-50 only): the PyTorch conversion of the Keras weights (Warvito's
  radimagenet-models: a Keras-style ResNet with conv biases and the stride on the first 1x1 convolution;
  keys ``conv1.bias``, ``layer1.0.downsample.0.bias`` ...).

Keras weights expect Keras "caffe" preprocessing: BGR, ``[0, 1]`` minus (0.406, 0.456, 0.485), no std; that
is what the teacher applies on its input path for both Keras formats. Grey images are repeated to 3 channels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torchvision

from monai_rd.networks.checkpoint import load_state_dict_strict, read_state_dict
from monai_rd.networks.nets.teachers import TEACHERS, FrozenTeacher
from monai_rd.networks.zoo.common import IMAGENET_MEAN, IMAGENET_STD, KERAS_CAFFE_MEAN_BGR, make_teacher
from monai_rd.networks.zoo.keras import KERAS_BN_EPS, KerasResNet50, keras_densenet121_to_torch, keras_resnet50_to_torch
from monai_rd.networks.zoo.trunks import DenseNetTrunk, ResNetTrunk

__all__ = ["radimagenet_resnet50", "radimagenet_densenet121", "detect_radimagenet_format", "RADIMAGENET_FORMATS"]

#: format -> (input channel order, mean, std) the weights were trained with.
RADIMAGENET_FORMATS: dict[str, tuple[str, Sequence[float], Sequence[float]]] = {
    "pytorch": ("RGB", IMAGENET_MEAN, IMAGENET_STD),
    "keras_h5": ("BGR", KERAS_CAFFE_MEAN_BGR, (1.0, 1.0, 1.0)),
    "keras_converted": ("BGR", KERAS_CAFFE_MEAN_BGR, (1.0, 1.0, 1.0)),
}


def detect_radimagenet_format(path: str | os.PathLike, state: dict[str, torch.Tensor] | None) -> str:
    """``"keras_h5"`` for ``.h5``/``.hdf5`` files, ``"pytorch"`` for ``backbone.*`` keys, else ``"keras_converted"``."""
    if os.fspath(path).lower().endswith((".h5", ".hdf5")):
        return "keras_h5"
    if state is not None and any(k.startswith("backbone.") for k in state):
        return "pytorch"
    return "keras_converted"


def _from_sequential(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``backbone.<i>.rest`` -> ``<name of the i-th child of model>.rest`` (the authors' ``children()[:-1]``)."""
    names = [n for n, _ in model.named_children()]
    out = {}
    for k, v in state.items():
        head, idx, rest = k.split(".", 2) if k.count(".") >= 2 else (k, "", "")
        if head != "backbone" or not idx.isdigit() or int(idx) >= len(names) - 1:
            out[k] = v  # left as is: reported as unexpected by the strict check
            continue
        out[f"{names[int(idx)]}.{rest}"] = v
    return out


def _densenet_legacy_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old torchvision DenseNet keys ``denselayer1.norm.1.weight`` -> ``denselayer1.norm1.weight``."""
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
        r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
    )
    out = {}
    for k, v in state.items():
        m = pattern.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


def _set_bn_eps(module: nn.Module, eps: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = eps


def _resnet50_pytorch(path, state, trunk_pooled):
    model = torchvision.models.resnet50(weights=None)
    if state is not None:
        sd = _from_sequential(state, model)
        model.fc = nn.Identity()  # the authors' file has no classifier; the trunk never calls it
        load_state_dict_strict(model, sd, os.fspath(path), "ResNet50.pt (RadImageNet PyTorch release)")
    return ResNetTrunk(model, trunk_pooled)


def _resnet50_keras(path, state, trunk_pooled, converted: bool):
    model = KerasResNet50()
    if path is not None:
        sd = state if converted else keras_resnet50_to_torch(path)
        expected = "RadImageNet-ResNet50_notop.pt (Keras conversion)" if converted else "RadImageNet-ResNet50_notop.h5"
        load_state_dict_strict(model, sd, os.fspath(path), expected)
    return _KerasResNetFeatures(model, trunk_pooled)


class _KerasResNetFeatures(nn.Module):
    def __init__(self, model: KerasResNet50, pooled: bool) -> None:
        super().__init__()
        self.model = model
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.model(x)
        return f.mean(dim=(2, 3)) if self.pooled else f


def _densenet121(path, state, trunk_pooled, keras: bool):
    model = torchvision.models.densenet121(weights=None)
    features = model.features
    if keras:
        _set_bn_eps(features, KERAS_BN_EPS)
    if path is not None:
        if keras:
            load_state_dict_strict(
                features, keras_densenet121_to_torch(path), os.fspath(path), "RadImageNet-DenseNet121_notop.h5"
            )
        else:
            sd = _densenet_legacy_keys(_from_sequential(state, model))
            sd = select_features(sd)
            load_state_dict_strict(features, sd, os.fspath(path), "DenseNet121.pt (RadImageNet PyTorch release)")
    return DenseNetTrunk(features, trunk_pooled)


def select_features(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``features.*`` -> ``*`` (other keys kept, so the strict check names them)."""
    return {(k[len("features.") :] if k.startswith("features.") else k): v for k, v in state.items()}


_RESNET_LOADERS: dict[str, Callable] = {
    "pytorch": _resnet50_pytorch,
    "keras_h5": lambda p, s, pooled: _resnet50_keras(p, s, pooled, converted=False),
    "keras_converted": lambda p, s, pooled: _resnet50_keras(p, s, pooled, converted=True),
}
_DENSENET_LOADERS: dict[str, Callable] = {
    "pytorch": lambda p, s, pooled: _densenet121(p, s, pooled, keras=False),
    "keras_h5": lambda p, s, pooled: _densenet121(p, s, pooled, keras=True),
}


def _teacher_builder(arch: str, loaders: dict[str, Callable], summary: str, files: str) -> Callable[..., FrozenTeacher]:
    """The registered builder of RadImageNet ``arch``: both architectures take the same options and differ only in
    the ``loaders`` of their formats (``{format: (weights, state, pooled) -> trunk}``) and their files."""

    def build(
        weights: str | os.PathLike | None = None,
        weights_format: str | None = None,
        pooled: bool = True,
        input_size: int = 224,
        trust_checkpoint: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        channel_order: str | None = None,
    ) -> FrozenTeacher:
        state = None
        if weights is not None and not os.fspath(weights).lower().endswith((".h5", ".hdf5")):
            state = read_state_dict(weights, trust_checkpoint=trust_checkpoint)
            if state and all(k.startswith("module.") for k in state):
                state = {k[len("module.") :]: v for k, v in state.items()}
        fmt = weights_format or (detect_radimagenet_format(weights, state) if weights is not None else "pytorch")
        if fmt not in loaders:
            raise ValueError(f"RadImageNet {arch} weights_format must be one of {sorted(loaders)}, got {fmt!r}.")
        model = loaders[fmt](weights, state, pooled)
        order, fmt_mean, fmt_std = RADIMAGENET_FORMATS[fmt]
        return make_teacher(
            model, f"radimagenet_{arch}", input_size, mean or fmt_mean, std or fmt_std, channel_order or order
        )

    build.__name__ = build.__qualname__ = f"radimagenet_{arch}"
    build.__doc__ = f"""{summary}

    Args:
        weights: {files}; ``None`` gives random torchvision weights.
        weights_format: one of {sorted(loaders)}; detected from the file if ``None``.
        mean, std, channel_order: override the preprocessing of the format (see :data:`RADIMAGENET_FORMATS`).
    """
    return build


radimagenet_resnet50 = TEACHERS.register(
    "radimagenet_resnet50",
    _teacher_builder(
        "resnet50",
        _RESNET_LOADERS,
        summary="RadImageNet ResNet-50: ``[B, 2048]`` (layer4 GAP) or, with ``pooled=False``, ``[B, 2048, h, w]``.",
        files="``ResNet50.pt`` (official PyTorch), ``RadImageNet-ResNet50_notop.h5`` (Keras) or the Keras conversion "
        "``.pt``",
    ),
)
radimagenet_densenet121 = TEACHERS.register(
    "radimagenet_densenet121",
    _teacher_builder(
        "densenet121",
        _DENSENET_LOADERS,
        summary="RadImageNet DenseNet-121: ``[B, 1024]`` (ReLU + GAP of ``features``) or ``[B, 1024, h, w]``.",
        files="``DenseNet121.pt`` (official PyTorch) or ``RadImageNet-DenseNet121_notop.h5`` (Keras, BatchNorm epsilon "
        "1.001e-5)",
    ),
)

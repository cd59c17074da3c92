"""Generic teachers: any timm or MONAI architecture with a local weights file, a TorchScript file, an ONNX file.

- ``timm:<arch>``: ``timm.create_model(arch, pretrained=False, num_classes=0)``; the classifier entries of the
  file (timm's ``pretrained_cfg["classifier"]``) are dropped; preprocessing from the architecture's
  ``pretrained_cfg`` (mean, std, input size) unless given.
- ``monai:<Net>``: a class of ``monai.networks.nets`` (``spatial_dims=2, in_channels=3`` by default), its last
  ``nn.Linear`` removed; e.g. ``monai:DenseNet121`` gives 1024 features.
- ``torchscript``: ``torch.jit.load`` of a scripted/traced module that maps images to features.
- ``onnx``: an ONNX file run by onnxruntime, a true black box that only returns features (no gradients, no
  parameters); its input size is read from the model when fixed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn

from monai_rd.networks.nets.backbones import monai_network, monai_trunk
from monai_rd.networks.checkpoint import load_weights
from monai_rd.networks.nets.teachers import TEACHERS, FrozenTeacher
from monai_rd.networks.zoo.common import IMAGENET_MEAN, IMAGENET_STD, make_teacher

__all__ = ["timm_teacher", "monai_teacher", "torchscript_teacher", "onnx_teacher", "OnnxFeatures", "TimmFeatures"]


class TimmFeatures(nn.Module):
    """A timm model with ``num_classes=0``: pooled ``[B, D]``, or with ``pooled=False`` the
    ``forward_features`` map ``[B, D, h, w]`` (convolutional architectures only)."""

    def __init__(self, model: nn.Module, pooled: bool = True) -> None:
        super().__init__()
        self.model = model
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooled:
            return self.model(x)
        f = self.model.forward_features(x)
        if f.ndim != 4:
            raise ValueError(
                f"{type(self.model).__name__}.forward_features returns shape {tuple(f.shape)}, not a [B, D, h, w] map; "
                "use pooled=True for this architecture."
            )
        return f


@TEACHERS.register_family("timm")
def timm_teacher(
    arch: str,
    weights: str | os.PathLike | None = None,
    pooled: bool = True,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    trust_checkpoint: bool = False,
    **kwargs,
) -> FrozenTeacher:
    """``timm:<arch>`` with weights from a local file (:func:`build_teacher` resolves ``hf-hub:``/``imagenet`` to its cached
    file); ``kwargs`` go to ``timm.create_model``."""
    import timm

    if not timm.is_model(arch):
        raise KeyError(f"timm has no architecture {arch!r}.")
    model = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    classifier = cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    load_weights(
        model,
        weights,
        drop_prefixes=tuple(f"{c}." for c in classifier),
        trust_checkpoint=trust_checkpoint,
        expected_file=f"a state dict of timm {arch}",
    )
    size = input_size or (cfg.get("input_size") or (3, 224, 224))[-1]
    return make_teacher(
        TimmFeatures(model, pooled),
        f"timm:{arch}",
        size,
        mean or cfg.get("mean", IMAGENET_MEAN),
        std or cfg.get("std", IMAGENET_STD),
    )


@TEACHERS.register_family("monai")
def monai_teacher(
    net: str,
    weights: str | os.PathLike | None = None,
    input_size: int | None = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    trust_checkpoint: bool = False,
    **kwargs,
) -> FrozenTeacher:
    """``monai:<Net>``: ``monai.networks.nets.<Net>(**kwargs)`` with its classifier (last ``nn.Linear``) removed.

    ``spatial_dims=2``, ``in_channels=3`` (or ``n_input_channels=3``) and ``out_channels=1``/``num_classes=1``
    are filled in when the class takes them and they are not given. The weights file is the state dict of the
    network as built (the classifier entries are dropped).
    """
    params = monai_network(net)[1]
    defaults = {"spatial_dims": 2, "in_channels": 3, "n_input_channels": 3, "out_channels": 1, "num_classes": 1}
    kwargs = {**{k: v for k, v in defaults.items() if k in params}, **kwargs}
    model = monai_trunk(net, kwargs, weights, trust_checkpoint)
    return make_teacher(model, f"monai:{net}", input_size, mean, std)


@TEACHERS.register("torchscript")
def torchscript_teacher(
    weights: str | os.PathLike | None = None,
    input_size: int | None = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    channel_order: str = "RGB",
) -> FrozenTeacher:
    """A TorchScript file (``torch.jit.save``) mapping ``[B, 3, H, W]`` to features; the width is probed.

    TorchScript archives hold a compiled program, not a pickle of arbitrary Python: use files you trust anyway.
    """
    if weights is None:
        raise ValueError("The 'torchscript' teacher needs weights=<path of a TorchScript .pt file>.")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"TorchScript file {path!r} does not exist.")
    try:
        model = torch.jit.load(path, map_location="cpu")
    except Exception as e:
        raise RuntimeError(f"{path!r} is not a TorchScript archive (torch.jit.save): {e}") from e
    return make_teacher(model, "torchscript", input_size, mean, std, channel_order)


class OnnxFeatures(nn.Module):
    """An ONNX model run by onnxruntime: ``[B, 3, H, W]`` float -> its first output as a tensor (no autograd).

    It has no parameters: it is the literal black box of the method. Outputs come back on the input's device.
    """

    def __init__(self, path: str, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        super().__init__()
        import onnxruntime as ort

        self.path = path
        self.session = ort.InferenceSession(path, providers=list(providers))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        self.input_hw = tuple(shape[2:4]) if len(shape) == 4 and all(isinstance(s, int) for s in shape[2:4]) else None
        self.input_batch = shape[0] if isinstance(shape[0], int) else None

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        if self.input_batch is not None and arr.shape[0] != self.input_batch:  # a fixed-batch export: run per chunk
            outs = [self._run(arr[i : i + self.input_batch]) for i in range(0, arr.shape[0], self.input_batch)]
            out = np.concatenate(outs, axis=0)
        else:
            out = self._run(arr)
        return torch.from_numpy(out).to(x.device)

    def _run(self, arr: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: arr})[0], dtype=np.float32)

    def __getstate__(self):  # onnxruntime sessions do not pickle; rebuild from the path
        state = self.__dict__.copy()
        state.pop("session", None)
        return state

    def __setstate__(self, state):
        import onnxruntime as ort

        self.__dict__.update(state)
        self.session = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])


@TEACHERS.register("onnx")
def onnx_teacher(
    weights: str | os.PathLike | None = None,
    input_size: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    channel_order: str = "RGB",
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> FrozenTeacher:
    """An ONNX file as a black-box teacher. ``input_size`` defaults to the model's fixed input side."""
    if weights is None:
        raise ValueError("The 'onnx' teacher needs weights=<path of an .onnx file>.")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ONNX file {path!r} does not exist.")
    model = OnnxFeatures(path, providers)
    if input_size is None:
        if model.input_hw is None or model.input_hw[0] != model.input_hw[1]:
            raise ValueError(
                f"ONNX model {path!r} has input shape {model.session.get_inputs()[0].shape}: pass input_size."
            )
        input_size = model.input_hw[0]
    return make_teacher(model, "onnx", input_size, mean, std, channel_order)

"""Turn any classification network into a feature extractor whose width is discovered, not hard-coded."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn
import torchvision

from monai_rd.networks.checkpoint import load_weights

__all__ = [
    "FeatureBackbone",
    "remove_classifier",
    "probe_output_shape",
    "torchvision_backbone",
    "monai_network",
    "monai_trunk",
    "monai_backbone",
]


def remove_classifier(model: nn.Module) -> str:
    """Replace the last ``nn.Linear`` of ``model`` (its classifier) by ``nn.Identity`` in place.

    The features a network hands its classifier are what RD distils, so this is the generic cut for
    torchvision-style networks (``fc``, ``classifier``, ``classifier.3``, ``heads.head`` ...).

    Returns:
        the qualified name of the removed layer, e.g. ``"fc"``.
    """
    last = None
    for name, child in model.named_modules():
        if isinstance(child, nn.Linear):
            last = name
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier to remove.")
    parent_name, _, attr = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Identity())
    return last


@torch.no_grad()
def probe_output_shape(
    module: nn.Module, in_channels: int = 3, size: int = 64, spatial_dims: int = 2
) -> tuple[int, ...]:
    """Shape of ``module``'s output for one ``[1, in_channels, size, size(, size)]`` input, batch dim dropped."""
    was_training = module.training
    module.eval()
    try:
        out = module(torch.zeros(1, in_channels, *(size,) * spatial_dims))
    finally:
        module.train(was_training)
    return tuple(out.shape[1:])


class FeatureBackbone(nn.Module):
    """A network that maps images ``[B, C, H, W]`` to features ``[B, feature_dim]`` (or maps ``[B, D, h, w]``).

    Args:
        model: the network with its classifier already removed.
        name: the registry name it was built from (kept for logging and export).
        probe_size: side of the dummy image used to discover ``feature_dim``.
        spatial_dims: 2 for images ``[B, C, H, W]``, 3 for volumes ``[B, C, D, H, W]``.
        in_channels: channels of the dummy input.
    """

    def __init__(
        self, model: nn.Module, name: str = "", probe_size: int = 64, spatial_dims: int = 2, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.feature_shape = probe_output_shape(model, in_channels, probe_size, spatial_dims)
        self.feature_dim = self.feature_shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def torchvision_backbone(
    arch: str, weights: str | os.PathLike | None = None, trust_checkpoint: bool = False, **kwargs
) -> FeatureBackbone:
    """Any torchvision classification architecture without its classifier: local weights file, ImageNet, or random.

    The weights file may be torchvision's own release (the classifier's keys are dropped) or a features-only
    state dict. ``weights="imagenet"`` loads torchvision's ``DEFAULT`` weights enum through its torch hub cache
    (resolve them first with :func:`monai_rd.networks.weights.resolve_weights`); ``weights=None`` is random and
    never downloads anything; ``kwargs`` go to the torchvision builder.
    """
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise KeyError(f"torchvision has no classification model {arch!r}.")
    imagenet = weights is not None and os.fspath(weights) == "imagenet"
    model = torchvision.models.get_model(arch, weights="DEFAULT" if imagenet else None, **kwargs)
    removed = remove_classifier(model)
    if weights is not None and not imagenet:
        load_weights(model, weights, drop_prefixes=(f"{removed}.",), trust_checkpoint=trust_checkpoint)
    return FeatureBackbone(model, name=f"torchvision:{arch}")


def monai_network(net: str) -> tuple[Callable[..., nn.Module], Mapping[str, inspect.Parameter]]:
    """``monai.networks.nets.<net>`` (a class or a builder such as ``resnet18``) and the parameters it takes."""
    import monai.networks.nets as nets

    builder = getattr(nets, net, None)
    if builder is None or not callable(builder):
        raise KeyError(f"monai.networks.nets has no network {net!r}.")
    return builder, inspect.signature(builder).parameters


def monai_trunk(
    net: str, kwargs: Mapping[str, Any], weights: str | os.PathLike | None = None, trust_checkpoint: bool = False
) -> nn.Module:
    """``monai.networks.nets.<net>(**kwargs)`` with its classifier (last ``nn.Linear``) removed; ``weights`` is the
    state dict of the network as built (the classifier's entries are dropped), ``None`` keeps the random init."""
    model = monai_network(net)[0](**kwargs)
    removed = remove_classifier(model)
    return load_weights(
        model,
        weights,
        drop_prefixes=(f"{removed}.",),
        trust_checkpoint=trust_checkpoint,
        expected_file=f"a state dict of monai.networks.nets.{net}",
    )


def monai_backbone(
    net: str,
    weights: str | os.PathLike | None = None,
    spatial_dims: int = 2,
    in_channels: int = 3,
    trust_checkpoint: bool = False,
    **kwargs,
) -> FeatureBackbone:
    """``monai.networks.nets.<net>`` (a class such as ``DenseNet121``/``EfficientNetBN`` or a builder such as
    ``resnet18``) without its classifier, for 2D images or 3D volumes (``spatial_dims=3``).

    ``in_channels``/``n_input_channels`` and ``out_channels``/``num_classes`` (1; the classifier is removed) are
    filled in; ``pretrained`` is False (never a download) and EfficientNetBN's ``model_name`` defaults to
    ``efficientnet-b0``. The weights file is the state dict of the network as built, classifier entries dropped.
    """
    params = monai_network(net)[1]
    if "in_channels" in params:  # classes: fill the arguments they name
        fill = {"spatial_dims": spatial_dims, "in_channels": in_channels, "out_channels": 1, "num_classes": 1}
        fill = {k: v for k, v in fill.items() if k in params}
    else:  # the ResNet builders (``resnet18`` ...) pass **kwargs to monai's ResNet
        fill = {"spatial_dims": spatial_dims, "n_input_channels": in_channels, "num_classes": 1}
    if "pretrained" in params:  # EfficientNetBN defaults to downloading ImageNet weights: never here
        fill["pretrained"] = False
    if net == "EfficientNetBN":
        fill["model_name"] = "efficientnet-b0"
    model = monai_trunk(net, {**fill, **kwargs}, weights, trust_checkpoint)
    probe = 32 if spatial_dims == 3 else 64
    return FeatureBackbone(model, name=f"monai:{net}", probe_size=probe, spatial_dims=spatial_dims,
                           in_channels=in_channels)  # fmt: skip

"""Turn any classification network into a feature extractor whose width is discovered, not hard-coded."""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torchvision

from monai_rd.networks.checkpoint import load_weights

__all__ = ["FeatureBackbone", "remove_classifier", "probe_output_shape", "torchvision_backbone"]


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
def probe_output_shape(module: nn.Module, in_channels: int = 3, size: int = 64) -> tuple[int, ...]:
    """Shape of ``module``'s output for one ``[1, in_channels, size, size]`` input, batch dim dropped."""
    was_training = module.training
    module.eval()
    try:
        out = module(torch.zeros(1, in_channels, size, size))
    finally:
        module.train(was_training)
    return tuple(out.shape[1:])


class FeatureBackbone(nn.Module):
    """A network that maps images ``[B, C, H, W]`` to features ``[B, feature_dim]`` (or maps ``[B, D, h, w]``).

    Args:
        model: the network with its classifier already removed.
        name: the registry name it was built from (kept for logging and export).
        probe_size: side of the dummy image used to discover ``feature_dim``.
    """

    def __init__(self, model: nn.Module, name: str = "", probe_size: int = 64) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.feature_shape = probe_output_shape(model, size=probe_size)
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

"""Fabricated teacher weights: a torchvision ResNet-18 at random init, as a state dict or a saved file."""

from __future__ import annotations

import os

import torch
import torchvision


def random_resnet18_state(seed: int | None = None) -> dict:
    """A torchvision ResNet-18's state dict at random init; ``seed`` seeds torch's global RNG first (None: as is)."""
    if seed is not None:
        torch.manual_seed(seed)
    return torchvision.models.resnet18().state_dict()


def random_resnet18_weights(path: str | os.PathLike, seed: int | None = None) -> str:
    """Save :func:`random_resnet18_state` to ``path`` (a plain ``torch.save`` file, as the teachers load); its path."""
    torch.save(random_resnet18_state(seed), path)
    return str(path)

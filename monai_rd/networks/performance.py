"""Throughput switches for a network: device placement, ``channels_last`` memory format, ``torch.compile``."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["prepare_network", "autocast_dtype"]


def prepare_network(
    network: torch.nn.Module,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    compile: bool = False,
    compile_kwargs: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """Move ``network`` to ``device`` and optionally to ``channels_last`` and compile it, in place.

    ``channels_last`` stores every 4-d parameter/buffer as NHWC (``torch.channels_last``); convolutions then
    run in that layout whatever the input's. ``compile`` calls :meth:`torch.nn.Module.compile`, which compiles
    the module's forward *in place*: the object, its type and its ``state_dict`` keys stay the same, so
    checkpoints, ``.deployable()`` and DDP wrapping are unaffected.

    Returns:
        the same module.
    """
    network = network.to(device)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    if compile:
        network.compile(**(compile_kwargs or {}))
    return network


def autocast_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"``/``"bf16"``/``"float16"``/``"fp16"`` (or a dtype) -> the autocast ``torch.dtype``."""
    if isinstance(name, torch.dtype):
        dtype = name
    else:
        aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16"}
        dtype = getattr(torch, aliases.get(str(name), str(name)), None)
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"amp_dtype must be 'bfloat16' or 'float16', got {name!r}.")
    return dtype

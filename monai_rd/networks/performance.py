"""Throughput switches for a network: device placement, ``channels_last`` memory format, ``torch.compile``."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["prepare_network", "autocast_dtype", "amp_effect"]


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


def amp_effect(amp: bool, amp_dtype: str | torch.dtype, device: torch.device | str) -> dict[str, Any]:
    """What ``amp`` does on ``device``, for the run record: ``{"amp_autocast": ..., "amp_loss_scaling": ...}``.

    The trainer and evaluator autocast on the device's own type (``torch.autocast(device.type)``), so AMP requested
    on a CPU does run, in ``amp_dtype`` (bfloat16 or float16 matmuls and convolutions on the CPU). Loss scaling is
    MONAI's ``torch.cuda.amp.GradScaler``, which disables itself without CUDA: on a CPU a float16 loss is not
    scaled. ``amp_autocast`` is the autocast dtype name or ``"off"``; ``amp_loss_scaling`` is what the scaler does.
    """
    device = torch.device(device)
    autocast = str(autocast_dtype(amp_dtype)).removeprefix("torch.") if amp else "off"
    scaling = bool(amp) and device.type == "cuda" and torch.cuda.is_available()
    return {"amp_autocast": f"{autocast} on {device.type}" if amp else "off", "amp_loss_scaling": scaling}

"""Safe loading of local weight files into networks (never a hub, never pickle unless trusted)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn as nn

__all__ = ["read_state_dict", "load_weights", "load_state_dict_strict", "select_prefix", "WeightsMismatchError"]


class WeightsMismatchError(RuntimeError):
    """The keys or shapes of a weights file do not match the network it is loaded into."""


def read_state_dict(path: str | os.PathLike, trust_checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` without executing code.

    ``torch.load(weights_only=True)`` is used unless ``trust_checkpoint`` is set; ``.safetensors`` files are
    read with safetensors. Containers ``{"state_dict": ...}``, ``{"model": ...}`` and ``{"network": ...}``
    are unwrapped, and a pickled ``nn.Module`` (only with ``trust_checkpoint=True``) gives its state dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: the file needs pickle and ``trust_checkpoint`` is False, or is not a checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file {path!r} does not exist; pass the path of a local file.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        obj: object = load_file(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not trust_checkpoint)
        except Exception as e:  # torch raises UnpicklingError or RuntimeError depending on the content
            if trust_checkpoint:
                raise RuntimeError(f"Could not read weights file {path!r}: {e}") from e
            raise RuntimeError(
                f"Weights file {path!r} cannot be read with torch.load(weights_only=True): it is not a plain "
                f"state dict or it needs pickle to run code ({type(e).__name__}: {str(e).splitlines()[0]}). "
                "If you trust its source, pass trust_checkpoint=True."
            ) from e
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for container in ("state_dict", "model", "network"):
        if isinstance(obj, Mapping) and container in obj and isinstance(obj[container], Mapping):
            obj = obj[container]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RuntimeError(f"Weights file {path!r} does not hold a state dict (a mapping of names to tensors).")
    return dict(obj)


def select_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose key starts with ``prefix``, with ``prefix`` removed (others are dropped).

    Used to take one tower out of a multi-tower checkpoint, e.g. ``module.visual.`` from a CLIP ``checkpoint.pt``.
    """
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_state_dict_strict(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str, expected_file: str | None = None
) -> nn.Module:
    """``module.load_state_dict(state, strict=True)`` with an error that lists every mismatch.

    Args:
        module: the network to fill.
        state: the (already remapped) state dict.
        source: where ``state`` came from (a file path), named in the error.
        expected_file: the file as its authors distribute it (e.g. ``"image_encoder(resnet50).pth"``), named in
            the error so that the user can check they passed the right one.

    Raises:
        WeightsMismatchError: listing the missing and unexpected keys and the shape mismatches.
    """
    expected = module.state_dict()
    state = dict(state)
    for key in expected:  # a BatchNorm step counter (unused in eval) absent from files older than PyTorch 0.4.1
        if key.endswith(".num_batches_tracked") and key not in state and key[:-20] + ".running_mean" in state:
            state[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:

        def _few(keys: list[str]) -> str:
            return ", ".join(keys[:10]) + (f" ... ({len(keys)} in all)" if len(keys) > 10 else "") or "none"

        hint = (
            f"Expected file: {expected_file}."
            if expected_file
            else "Check that the file is the one made for this architecture."
        )
        raise WeightsMismatchError(
            f"Weights file {source!r} does not match {type(module).__name__}: "
            f"missing keys: {_few(missing)}; unexpected keys: {_few(unexpected)}; shape mismatches: {_few(shapes)}. "
            + hint
        )
    module.load_state_dict(state, strict=True)
    return module


def load_weights(
    module: nn.Module,
    path: str | os.PathLike | None,
    drop_prefixes: Sequence[str] = (),
    strip_prefixes: Sequence[str] = ("module.",),
    trust_checkpoint: bool = False,
    remap: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    expected_file: str | None = None,
) -> nn.Module:
    """Load a local weights file into ``module`` with ``strict=True``.

    Args:
        module: the network to fill.
        path: a ``.pt``/``.pth``/``.safetensors`` file; ``None`` loads nothing (the module keeps its initial
            weights: what every builder's ``weights=None`` means, so the builders need no test of their own).
        drop_prefixes: keys starting with one of these are discarded first (e.g. a removed classifier ``fc.``).
        strip_prefixes: prefixes removed from every key that has them (e.g. DataParallel's ``module.``).
        trust_checkpoint: allow pickle (only for files from a trusted source).
        remap: applied last to the state dict (key renaming, tower selection, layout conversion).
        expected_file: the file name as distributed, named in the error message.

    Raises:
        WeightsMismatchError: listing the missing and unexpected keys and the shape mismatches.
    """
    if path is None:
        return module
    state = read_state_dict(path, trust_checkpoint=trust_checkpoint)
    for prefix in strip_prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not any(k.startswith(p) for p in drop_prefixes)}
    if remap is not None:
        state = remap(state)
    return load_state_dict_strict(module, state, os.fspath(path), expected_file=expected_file)

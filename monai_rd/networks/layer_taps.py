"""Layer tapping (as timm's ``_features.py``): find a network's feature layers by one probe forward, and keep
the outputs of named layers from its latest forward pass as ``[B, C, H, W]`` maps, whatever the network's own
layout (CNN maps, timm ViT tokens, SAM ViT ``[B, h, w, C]`` blocks).

Used by the feature-distillation baselines (:class:`~monai_rd.networks.DistillNet`), the PEFT adapters (which
layers a forward uses) and the method recipes (default layers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = [
    "LayerTaps",
    "default_feature_layer",
    "default_feature_layers",
    "tap_layout",
    "to_nchw",
    "probe_forward",
    "module_device",
]

_NOT_FEATURE_LAYERS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool2d, nn.Identity, nn.Flatten,
                       nn.Dropout)  # fmt: skip


def _module(root: nn.Module, name: str, owner: str) -> nn.Module:
    try:
        return root.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in root.named_modules() if n][-12:]
        raise ValueError(f"The {owner} has no layer {name!r}; its last layers are {names}.") from None


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU when it has none)."""
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def probe_forward(root: nn.Module, image_size: int, hooks: Sequence = ()) -> None:
    """One no-grad, eval-mode forward of a zero image ``[1, 3, image_size, image_size]`` through ``root``.

    The training mode is restored and the forward ``hooks`` (handles) are removed afterwards, whatever happens.
    """
    was_training = root.training
    root.eval()
    try:
        with torch.no_grad():
            root(torch.zeros(1, 3, image_size, image_size, device=module_device(root)))
    finally:
        root.train(was_training)
        for h in hooks:
            h.remove()


def default_feature_layer(root: nn.Module, image_size: int, owner: str = "network") -> str:
    """Name of the last layer (in execution order) whose output is a feature map ``[B, C, H, W]`` or tokens
    ``[B, N, D]``, found by one forward pass of a ``[1, 3, image_size, image_size]`` zero image in eval mode.

    Pooling, dropout, flatten and identity layers are skipped, so a ResNet gives ``...layer4`` and a timm ViT its
    final ``...norm`` tokens.
    """
    finished: list[str] = []

    def record(name: str):
        def hook(module, inputs, output) -> None:
            if torch.is_tensor(output) and output.ndim in (3, 4):
                finished.append(name)

        return hook

    handles = [
        mod.register_forward_hook(record(name))
        for name, mod in root.named_modules()
        if name and not isinstance(mod, _NOT_FEATURE_LAYERS)
    ]
    probe_forward(root, image_size, handles)
    if not finished:
        raise ValueError(f"The {owner} has no layer giving a [B, C, H, W] map or [B, N, D] tokens; name one.")
    return finished[-1]


def _sam_vit(module: nn.Module) -> bool:
    """A timm ``VisionTransformerSAM`` (SAM / LVM-Med image encoder): its blocks emit ``[B, h, w, C]``."""
    return type(module).__name__ == "VisionTransformerSAM"


def _token_vit(module: nn.Module) -> bool:
    """A timm ``VisionTransformer``-like module: tokens ``[B, P + h * w, C]`` with ``P`` prefix tokens."""
    return all(hasattr(module, a) for a in ("patch_embed", "blocks", "num_prefix_tokens")) and not _sam_vit(module)


def tap_layout(root: nn.Module, name: str) -> tuple[str, int]:
    """How the output of layer ``name`` of ``root`` is laid out: ``("nchw", 0)``, ``("nhwc", 0)`` (blocks of a SAM
    ViT such as LVM-Med's, ``[B, h, w, C]``) or ``("tokens", P)`` (a timm ViT, ``[B, P + h * w, C]``).

    The innermost ViT that contains ``name`` decides. Inside a SAM ViT only whole stages can be tapped
    (``patch_embed``, ``norm_pre``, ``blocks``, ``blocks.<i>``): the layers inside a windowed block see windows,
    not the image; the conv ``neck`` is channels-first.
    """
    parts = name.split(".") if name else []
    for cut in range(len(parts), -1, -1):
        prefix = ".".join(parts[:cut])
        module = root.get_submodule(prefix) if prefix else root
        rest = parts[cut:]
        if _sam_vit(module):
            if rest and rest[0] == "neck":
                return ("nchw", 0)
            if (
                not rest
                or rest[0] in ("patch_embed", "norm_pre", "pos_drop", "patch_drop")
                or (rest[0] == "blocks" and len(rest) <= 2)
            ):
                return ("nhwc", 0)
            raise ValueError(
                f"Layer {name!r} lies inside a windowed block of a SAM ViT, where outputs are windows, not the "
                "image; tap a whole block ('...blocks.<i>') instead."
            )
        if _token_vit(module):
            return ("tokens", int(module.num_prefix_tokens))
    return ("nchw", 0)


def to_nchw(x: torch.Tensor, layout: tuple[str, int], name: str = "feature") -> torch.Tensor:
    """A tapped output in ``layout`` (see :func:`tap_layout`) -> ``[B, C, H, W]`` (vectors ``[B, D]`` pass as is).

    ``[B, h, w, C]`` is permuted; tokens ``[B, P + h * w, C]`` lose their ``P`` prefix tokens and become a square
    ``[B, C, h, w]`` map.
    """
    kind, prefix = layout
    if kind == "nhwc" and x.ndim == 4:
        return x.permute(0, 3, 1, 2)
    if kind == "tokens" and x.ndim == 3:
        b, n, c = x.shape
        side = math.isqrt(n - prefix)
        if side * side != n - prefix:
            raise ValueError(f"{name}: {n} tokens less {prefix} prefix tokens do not form a square grid.")
        return x[:, prefix:].transpose(1, 2).reshape(b, c, side, side)
    return x


class LayerTaps:
    """Forward hooks that keep the outputs of named layers of ``root`` from its latest forward pass, each brought
    to ``[B, C, H, W]`` according to the network's own layout (:func:`tap_layout`, :func:`to_nchw`)."""

    def __init__(self, root: nn.Module, names: Sequence[str], owner: str) -> None:
        self.names = list(names)
        self.outputs: dict[str, torch.Tensor] = {}
        self.layouts = {name: tap_layout(root, name) for name in self.names}
        self.root = root
        for name in self.names:
            _module(root, name, owner).register_forward_hook(self._keep(name))

    def _keep(self, name: str):
        def hook(module, inputs, output):
            self.outputs[name] = to_nchw(output, self.layouts[name], name)

        return hook

    def pop(self) -> list[torch.Tensor]:
        missing = [n for n in self.names if n not in self.outputs]
        if missing:
            raise RuntimeError(f"Layers {missing} did not run in the forward pass.")
        out = [self.outputs[n] for n in self.names]
        self.outputs.clear()
        return out

    def shapes(self, image_size: int) -> list[tuple[int, ...]]:
        """Per-sample shapes ``(C, H, W)`` of the taps for a ``[1, 3, image_size, image_size]`` input."""
        probe_forward(self.root, image_size)
        return [tuple(t.shape[1:]) for t in self.pop()]


def default_feature_layers(root: nn.Module, image_size: int, count: int, owner: str = "network") -> list[str]:
    """``count`` layers spread over the depth of ``root`` for multi-layer distillation (SemCKD).

    A network with transformer ``blocks`` (timm ViTs, SAM) gives evenly spaced blocks ending with the last one
    (``blocks.2, 5, 8, 11`` for 12 blocks and ``count=4``); a CNN gives the ends of its last ``count`` stages (the
    outermost layer at each output resolution before the maps shrink), or all its stages if it has fewer.
    """
    for name, module in root.named_modules():
        if (_sam_vit(module) or _token_vit(module)) and isinstance(getattr(module, "blocks", None), nn.Sequential):
            n = len(module.blocks)
            picks = sorted({n - 1 - round(i * n / count) for i in range(count) if n - 1 - round(i * n / count) >= 0})
            return [f"{name}.blocks.{i}" if name else f"blocks.{i}" for i in picks]
    finished: list[tuple[str, tuple]] = []

    def record(name: str):
        def hook(module, inputs, output) -> None:
            if torch.is_tensor(output) and output.ndim == 4:
                finished.append((name, tuple(output.shape[2:])))

        return hook

    handles = [mod.register_forward_hook(record(name)) for name, mod in root.named_modules()
               if name and not isinstance(mod, _NOT_FEATURE_LAYERS)]  # fmt: skip
    probe_forward(root, image_size, handles)
    stages = []
    for size in dict.fromkeys(size for _, size in finished):  # resolutions in order of first appearance
        area = size[0] * size[1]
        if area == 1 and size != finished[-1][1]:
            continue  # [B, C, 1, 1] squeeze-excitation gates inside a stage are not a stage of their own
        # [B, C, 1, 1] gates (squeeze-excitation convs) do not end a stage
        cutoff = next((i for i, (_, s) in enumerate(finished) if 1 < s[0] * s[1] < area), len(finished))
        # the stage's end: the outermost layer at this resolution that finished before any smaller map
        # (so a ResNet gives "layer1", not the first 1x1 conv of "layer2.0", which runs at layer1's size)
        candidates = [(-n.count("."), i, n) for i, (n, s) in enumerate(finished[:cutoff]) if s == size]
        if candidates:
            stages.append(max(candidates)[1:])
    stages = [name for _, name in sorted(stages)]
    return stages[-count:]

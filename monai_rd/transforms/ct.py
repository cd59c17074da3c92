"""CT intensity windowing: named windows (lung, mediastinum, brain, bone, abdomen) and multi-window stacking.

A window of width ``W`` and level (centre) ``L`` maps Hounsfield units linearly to ``[0, 1]``::

    out = clip((HU - (L - W / 2)) / W, 0, 1)

This is the plain linear window used by most deep-learning pipelines. (DICOM's VOI "LINEAR" function,
PS3.3 C.11.2.1.2, differs by half a unit: ``((HU - (L - 0.5)) / (W - 1) + 0.5)``; the DICOM readers apply that one
when asked to use the file's own WindowCenter/WindowWidth.)

Named windows, width/level in HU. Source: Radiopaedia, "Windowing (CT)"
(https://radiopaedia.org/articles/windowing-ct) for lung W1500/L-600, mediastinum W350/L50, brain W80/L40 and
bone W1800/L400; abdomen W400/L40 is the common soft-tissue abdominal window (Radiopaedia lists W400/L50).
``bone_wide`` W2000/L500 is the other bone window in common use.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Union

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from monai_rd.transforms._utils import like, source_of

__all__ = ["CT_WINDOWS", "resolve_window", "rgb_windows", "CTWindow", "CTWindowd", "CTMultiWindow", "CTMultiWindowd"]

#: name -> (width, level) in Hounsfield units; see the module docstring for sources.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "brain": (80.0, 40.0),
    "bone": (1800.0, 400.0),
    "bone_wide": (2000.0, 500.0),
    "abdomen": (400.0, 40.0),
}

Window = Union[str, Sequence[float]]


def resolve_window(window: Window) -> tuple[float, float]:
    """``(width, level)`` of a window given by name (a key of :data:`CT_WINDOWS`) or as ``(width, level)``."""
    if isinstance(window, str):
        if window not in CT_WINDOWS:
            raise ValueError(
                f"Unknown CT window {window!r}; named windows: {sorted(CT_WINDOWS)}, or give (width, level)."
            )
        return CT_WINDOWS[window]
    values = tuple(float(v) for v in window)
    if len(values) != 2 or values[0] <= 0:
        raise ValueError(f"A CT window is a name or (width, level) with width > 0, got {window!r}.")
    return values  # type: ignore[return-value]


def rgb_windows(windows: Sequence[Window]) -> list:
    """``windows`` checked for a 3-channel (RGB) pipeline: one window (repeated to grey RGB) or three.

    Two windows would become a grey + alpha image that ``EnsureRGB`` reduces to its first channel, so they raise.
    """
    windows = [windows] if isinstance(windows, str) else list(windows)
    if len(windows) not in (1, 3):
        raise ValueError(
            f"The ct preset makes 3-channel images: give 1 window (repeated) or 3 windows, got {len(windows)}: "
            f"{windows!r}."
        )
    for window in windows:
        resolve_window(window)
    return windows


def _apply_window(img: torch.Tensor, width: float, level: float) -> torch.Tensor:
    x = torch.as_tensor(img, dtype=torch.float32)
    low = level - width / 2.0
    return ((x - low) / width).clamp_(0.0, 1.0)


class CTWindow(Transform):
    """Window a CT image in Hounsfield units to ``[0, 1]``.

    Args:
        window: a name of :data:`CT_WINDOWS` (``"lung"``, ``"mediastinum"``, ``"brain"``, ``"bone"``, ``"abdomen"``...)
            or ``(width, level)`` in HU.

    Input ``[C, *spatial]`` in HU (any dtype); output float32 ``[C, *spatial]`` in ``[0, 1]``, metadata kept.
    """

    def __init__(self, window: Window = "mediastinum") -> None:
        self.width, self.level = resolve_window(window)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return like(_apply_window(img, self.width, self.level), img)


class CTMultiWindow(Transform):
    """Stack several windows of a single-channel CT image as channels (e.g. lung/mediastinum/bone -> "RGB").

    Args:
        windows: names of :data:`CT_WINDOWS` or ``(width, level)`` pairs, one per output channel.

    Input ``[1, *spatial]`` in HU; output float32 ``[len(windows), *spatial]`` in ``[0, 1]``, channel ``i`` being
    ``windows[i]``. A multi-channel input raises (window a single CT channel).
    """

    def __init__(self, windows: Sequence[Window] = ("lung", "mediastinum", "bone")) -> None:
        if isinstance(windows, str) or len(windows) == 0:
            raise ValueError(f"windows must be a non-empty list of windows, got {windows!r}.")
        self.windows = [resolve_window(w) for w in windows]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[0] != 1:
            raise ValueError(
                f"CTMultiWindow expects one channel [1, *spatial] in HU{source_of(img)}, got shape {tuple(img.shape)}."
            )
        out = torch.cat([_apply_window(img, w, l) for w, l in self.windows], dim=0)
        return like(out, img)


class CTWindowd(MapTransform):
    """Dictionary version of :class:`CTWindow`."""

    def __init__(self, keys: KeysCollection, window: Window = "mediastinum", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = CTWindow(window)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class CTMultiWindowd(MapTransform):
    """Dictionary version of :class:`CTMultiWindow`."""

    def __init__(
        self,
        keys: KeysCollection,
        windows: Sequence[Window] = ("lung", "mediastinum", "bone"),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = CTMultiWindow(windows)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d

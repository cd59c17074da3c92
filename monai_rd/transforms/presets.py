"""Modality presets: the transforms that follow ``LoadImaged`` for each imaging modality.

The presets are JSON files in MONAI config syntax, kept in the repository's top-level ``transforms/`` folder
(the source of truth) and copied into the installed package (``monai_rd/transforms/presets/``) at build time, so
:func:`load_preset` works from any working directory, in a source checkout and after a non-editable install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser
from monai.transforms import Compose

__all__ = ["MODALITIES", "VOLUME_MODALITIES", "STAGES", "presets_dir", "preset_path", "load_preset"]

#: Modalities with a preset, i.e. the file names (without ``.json``) under ``transforms/``.
MODALITIES = ("ct", "mri", "ultrasound", "dermoscopy", "xray")
#: Volume presets (3D output ``[1, s, s, s]``), also under ``transforms/``.
VOLUME_MODALITIES = ("ct_volume",)
#: Pipeline ids every preset defines.
STAGES = ("train", "eval")


def presets_dir() -> Path:
    """The folder holding the preset JSON files.

    The copy installed inside the package wins; a source checkout falls back to the top-level ``transforms/``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "presets", here.parent.parent / "transforms"):
        if all((candidate / f"{m}.json").is_file() for m in MODALITIES + VOLUME_MODALITIES):
            return candidate
    raise FileNotFoundError(
        f"No modality presets found (looked in {here / 'presets'} and {here.parent.parent / 'transforms'}); "
        "reinstall monai_rd (the build copies transforms/*.json into the package) or run from a source checkout."
    )


def preset_path(modality: str) -> str:
    """Absolute path of the preset JSON of ``modality`` (one of :data:`MODALITIES`)."""
    if modality not in MODALITIES + VOLUME_MODALITIES:
        raise ValueError(f"Unknown modality {modality!r}; presets exist for {list(MODALITIES + VOLUME_MODALITIES)}.")
    return os.fspath(presets_dir() / f"{modality}.json")


def load_preset(modality: str, stage: str, image_size: int = 224, keys: Any = "image", **overrides: Any) -> Compose:
    """Build the post-loading pipeline of ``modality`` for ``stage`` (``"train"`` augments, ``"eval"`` does not).

    The pipeline expects a dictionary whose ``keys`` hold channel-first 2D images ``[C, H, W]`` as produced by
    ``LoadImaged(..., ensure_channel_first=True)`` and returns them as float ``[3, image_size, image_size]``
    in ``[0, 1]`` (before any augmentation that may move values slightly, such as speckle or contrast).
    ``ct_volume`` takes CT volumes ``[1, X, Y, Z]`` (with their affine) and returns ``[1, s, s, s]`` cubes of
    side ``image_size`` (see ``transforms/ct_volume.json``).

    Args:
        modality: one of :data:`MODALITIES`.
        stage: ``"train"`` or ``"eval"``.
        image_size: side of the square output image.
        keys: the dictionary key(s) the pipeline transforms.
        overrides: values of other top-level ids of the preset (e.g. ``windows=["lung", "bone", "brain"]`` for CT);
            an id the preset does not define raises ``KeyError`` listing those it has.

    Returns:
        a :class:`monai.transforms.Compose`.

    Raises:
        ValueError: unknown modality or stage, or a value the preset's transforms reject (the message names the
            preset file and the underlying error).
        KeyError: an override that is not an id of the preset.
    """
    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}; choose one of {list(STAGES)}.")
    path = preset_path(modality)
    parser = ConfigParser()
    parser.read_config(path)
    tunable = sorted(k for k in parser.get() if k not in STAGES and k != "imports" and not k.startswith("_"))
    unknown = sorted(set(overrides) - set(tunable))
    if unknown:
        raise KeyError(f"Preset {path!r} has no ids {unknown}; it can be overridden on {tunable}.")
    parser["image_size"] = int(image_size)
    parser["keys"] = keys
    for key, value in overrides.items():
        parser[key] = value
    try:
        pipeline = parser.get_parsed_content(stage, instantiate=True)
    except Exception as error:  # MONAI wraps the cause in RuntimeErrors carrying the expression; name the cause
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise ValueError(
            f"Preset {path!r}, stage {stage!r}, could not be built: {type(cause).__name__}: {cause}"
        ) from error
    if not isinstance(pipeline, Compose):
        raise TypeError(f"Preset {path!r}: id {stage!r} must be a Compose, got {type(pipeline).__name__}.")
    return pipeline

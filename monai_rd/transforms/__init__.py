"""Transforms (array and dictionary forms, MONAI style) that MONAI itself lacks, and the modality presets."""

from .color import EnsureRGB, EnsureRGBd
from .presets import MODALITIES, STAGES, load_preset, preset_path, presets_dir

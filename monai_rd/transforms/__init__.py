"""Transforms (array and dictionary forms, MONAI style) that MONAI itself lacks, and the modality presets."""

from .color import EnsureRGB, EnsureRGBd
from .ct import CT_WINDOWS, CTMultiWindow, CTMultiWindowd, CTWindow, CTWindowd, resolve_window, rgb_windows
from .dermoscopy import HairRemoval, HairRemovald, ShadesOfGray, ShadesOfGrayd
from .mri import ForegroundZScore, ForegroundZScored
from .slice import ExtractSlice, ExtractSliced
from .presets import MODALITIES, STAGES, load_preset, preset_path, presets_dir
from .ultrasound import RandSpeckleNoise, RandSpeckleNoised, UltrasoundFanCrop, UltrasoundFanCropd, fan_mask
from .xray import (
    ARRAY_PHOTOMETRIC_KEY,
    CLAHE,
    PHOTOMETRIC_KEYS,
    CLAHEd,
    InvertMonochrome1,
    InvertMonochrome1d,
    photometric_interpretation,
)

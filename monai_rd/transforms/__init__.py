"""Transforms (array and dictionary forms, MONAI style) that MONAI itself lacks, and the modality presets."""

from monai_rd.transforms.color import EnsureRGB, EnsureRGBd
from monai_rd.transforms.ct import (
    CT_WINDOWS,
    CTMultiWindow,
    CTMultiWindowd,
    CTWindow,
    CTWindowd,
    resolve_window,
    rgb_windows,
)
from monai_rd.transforms.dermoscopy import HairRemoval, HairRemovald, ShadesOfGray, ShadesOfGrayd
from monai_rd.transforms.mri import ForegroundZScore, ForegroundZScored
from monai_rd.transforms.slice import ExtractSlice, ExtractSliced
from monai_rd.transforms.presets import MODALITIES, STAGES, VOLUME_MODALITIES, load_preset, preset_path, presets_dir
from monai_rd.transforms.ultrasound import (
    RandSpeckleNoise,
    RandSpeckleNoised,
    UltrasoundFanCrop,
    UltrasoundFanCropd,
    fan_mask,
)
from monai_rd.transforms.xray import (
    ARRAY_PHOTOMETRIC_KEY,
    CLAHE,
    PHOTOMETRIC_KEYS,
    CLAHEd,
    InvertMonochrome1,
    InvertMonochrome1d,
    photometric_interpretation,
)

"""Transforms (array and dictionary forms, MONAI style) that MONAI itself lacks."""

from .color import EnsureRGB, EnsureRGBd
from .slice import ExtractSlice, ExtractSliced

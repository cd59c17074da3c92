"""Utilities every layer may use: the name registry, shared key names and atomic, hashed file io. Imports nothing of monai_rd."""

from monai_rd.utils.enums import RDKeys
from monai_rd.utils.progress import EpochProgress, format_seconds
from monai_rd.utils.io import atomic_path, atomic_write_json, atomic_write_text, sha256_file, sha256_json
from monai_rd.utils.registry import Registry

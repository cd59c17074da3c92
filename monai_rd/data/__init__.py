"""Data: dataset indexers that write MONAI datalists, and split helpers."""

from .busi import BUSI_CLASSES, index_busi
from .datalist import datalist_hash, stratified_split, write_datalist
from .images import IMAGE_EXTENSIONS, list_images
from .synthetic import make_busi_like
from .validate import UnreadableInputsError, check_readable

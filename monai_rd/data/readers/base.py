"""The one ``read``/``get_data`` body every monai_rd reader shares (a MONAI ``ImageReader`` over single files).

A subclass names its ``suffixes`` and its ``error`` class and implements :meth:`FileImageReader.read_file`;
``read`` only checks the paths (so that ``LoadImage`` may fall back to another reader), and the decoding
happens in ``get_data``, whose errors (file and reason named) then reach the user.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from monai.data.image_reader import ImageReader, _copy_compatible_dict, _stack_images
from monai.utils import ensure_tuple

__all__ = ["FileImageReader"]


class FileImageReader(ImageReader):
    """Base of the natural-image, NIfTI and DICOM readers: one path (or several, stacked as channels) in,
    ``(array, meta)`` out.

    Subclasses set ``suffixes`` (lower-case, with the dot) and ``error`` (raised for a path of the wrong kind),
    and implement :meth:`read_file`.
    """

    suffixes: tuple[str, ...] = ()
    error: type[Exception] = ValueError
    dtype = np.float32

    def verify_suffix(self, filename: Sequence[str] | str) -> bool:
        return all(os.fspath(f).lower().endswith(self.suffixes) for f in ensure_tuple(filename))

    def read_file(self, name: str) -> tuple[np.ndarray, dict]:
        """Decode one path as ``(array, meta)``; raises ``self.error`` naming the file and the reason."""
        raise NotImplementedError

    def read(self, data, **kwargs):
        """Check the paths (else raise, so that ``LoadImage`` may try another reader); nothing is decoded here."""
        names = tuple(os.fspath(n) for n in ensure_tuple(data))
        if not self.verify_suffix(names):
            raise self.error(f"{list(names)}: not a file or folder {type(self).__name__} reads.")
        return names

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        """``(array, meta)``; several paths are stacked as channels (same geometry required, as in MONAI)."""
        arrays, meta = [], {}
        for name in ensure_tuple(img):
            arr, m = self.read_file(name)
            _copy_compatible_dict(m, meta)
            arrays.append(np.asarray(arr).astype(self.dtype, copy=False))
        return _stack_images(arrays, meta), meta

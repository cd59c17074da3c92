"""A PNG/JPEG/BMP/TIFF reader for MONAI with the orientation natural-image foundation models expect.

Convention: :meth:`NaturalImageReader.get_data` returns ``[H, W]`` (grey) or ``[H, W, C]`` (``C`` = 2 grey+alpha,
3 RGB, 4 RGBA) with ``H`` the image rows from top to bottom and ``W`` the columns from left to right, exactly
``numpy.asarray(PIL.Image.open(path))``; after ``EnsureChannelFirst`` an image is ``[C, H, W]``, the layout of
torchvision and of every natural-image backbone. (MONAI's ``PILReader`` transposes to ``[W, H]`` unless
``reverse_indexing=False``.) The EXIF orientation of photographs is applied first (``exif_transpose``).

Values are kept as stored: 8-bit images in [0, 255], 16-bit (PIL modes ``I;16``/``I;16B``/``I``) in
[0, 65535], float TIFF (``F``) as is; palette images become RGB (RGBA when they carry transparency),
1-bit images 0/255, CMYK/YCbCr/LAB RGB. Multi-page TIFFs are refused (one image per file).
"""

from __future__ import annotations

import os

import numpy as np
from monai_rd.data.errors import BadInputError
from monai_rd.data.readers.base import FileImageReader

__all__ = ["NaturalImageReader", "ImageReadError", "read_natural_image", "NATURAL_IMAGE_SUFFIXES"]

NATURAL_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class ImageReadError(BadInputError):
    """An image file that cannot be read; the message names the file and the reason."""


def read_natural_image(
    path: str | os.PathLike, exif_transpose: bool = True, dtype=np.float32
) -> tuple[np.ndarray, dict]:
    """Read one image file as ``([H, W] or [H, W, C], meta)``; see the module docstring."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(f"{path!r}: no such file.")
    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                raise ImageReadError(
                    f"{path!r} holds {im.n_frames} pages/frames; one image per file is expected (split the TIFF)."
                )
            im.load()
            if exif_transpose:
                im = ImageOps.exif_transpose(im)
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode == "PA":
                im = im.convert("RGBA")
            elif mode == "1":
                im = im.convert("L")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode not in ("L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "F"):
                raise ImageReadError(f"{path!r}: PIL mode {mode!r} is not supported.")
            arr = np.asarray(im)
    except ImageReadError:
        raise
    except UnidentifiedImageError as e:
        raise ImageReadError(f"{path!r} is not an image PIL can read (PNG, JPEG, BMP, TIFF expected).") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path!r} cannot be decoded ({type(e).__name__}: {e}); truncated or corrupt file?") from e
    colour = arr.ndim == 3
    meta = {
        "affine": np.eye(4),
        "original_affine": np.eye(4),
        "spatial_shape": np.asarray(arr.shape[:2]),
        "original_channel_dim": -1 if colour else float("nan"),
        "rd_mode": mode,
    }
    return arr.astype(dtype), meta


class NaturalImageReader(FileImageReader):
    """MONAI ``ImageReader`` for PNG/JPEG/BMP/TIFF files: ``[H, W(, C)]``, rows first (see the module docstring).

    Args:
        exif_transpose: apply the EXIF orientation tag of photographs.
        dtype: output dtype (values are not rescaled).
    """

    suffixes = NATURAL_IMAGE_SUFFIXES
    error = ImageReadError

    def __init__(self, exif_transpose: bool = True, dtype=np.float32) -> None:
        super().__init__()
        self.exif_transpose = exif_transpose
        self.dtype = dtype

    def read_file(self, name: str) -> tuple[np.ndarray, dict]:
        return read_natural_image(name, self.exif_transpose, self.dtype)

"""Property-based: random bytes to the readers and random shapes/values to the transforms.

Only the documented errors may come out: the readers' ``ImageReadError`` / ``DicomReadError`` /
``NiftiReadError`` / ``UnsupportedFileError`` (all ``ValueError``s naming the file), and ``ValueError`` from the
transforms. Anything else (IndexError, ZeroDivisionError, a bare OSError, a crash) fails the test. Bounded to
a few dozen examples per property, no deadline per example (the machine is shared), < 1 min in all.
"""

import os
import tempfile

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monai_rd.data import MedicalImageReader, write_dicom_series, write_nifti_volume
from monai_rd.data.readers.dicom import DicomReadError, DicomReader
from monai_rd.data.readers.natural import ImageReadError, NaturalImageReader
from monai_rd.data.readers.medical import UnsupportedFileError
from monai_rd.data.readers.nifti import NiftiReader, NiftiReadError
import monai_rd.transforms as T

READ_ERRORS = (ImageReadError, DicomReadError, NiftiReadError, UnsupportedFileError)
SETTINGS = settings(
    max_examples=int(os.environ.get("RD_HYPOTHESIS_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)

_TMP = tempfile.mkdtemp(prefix="rd_prop_")


def _valid_bytes():
    from PIL import Image

    out = {}
    p = os.path.join(_TMP, "v.png")
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(p)
    out[".png"] = open(p, "rb").read()
    p = os.path.join(_TMP, "v.jpg")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(p)
    out[".jpg"] = open(p, "rb").read()
    folder = write_dicom_series(os.path.join(_TMP, "dcm"), n_slices=1, size=16)
    out[".dcm"] = open(os.path.join(folder, os.listdir(folder)[0]), "rb").read()
    out[".nii.gz"] = open(write_nifti_volume(os.path.join(_TMP, "v.nii.gz"), shape=(8, 8, 4)), "rb").read()
    out[".nii"] = open(write_nifti_volume(os.path.join(_TMP, "v.nii"), shape=(8, 8, 4)), "rb").read()
    return out


VALID = _valid_bytes()
READERS = {".png": NaturalImageReader, ".jpg": NaturalImageReader, ".dcm": DicomReader, ".nii": NiftiReader,
           ".nii.gz": NiftiReader}  # fmt: skip


def _read(reader, path):
    return reader.get_data(reader.read(path))


def _check(suffix, data):
    path = os.path.join(_TMP, "x" + suffix)
    with open(path, "wb") as f:
        f.write(data)
    for reader in (READERS[suffix](), MedicalImageReader()):
        try:
            img, _ = _read(reader, path)
        except READ_ERRORS as e:
            assert "x" + suffix in str(e), str(e)  # the message names the file
        else:
            assert isinstance(img, np.ndarray) and img.size > 0


@SETTINGS
@given(suffix=st.sampled_from(sorted(READERS)), data=st.binary(max_size=2048))
def test_random_bytes(suffix, data):
    _check(suffix, data)


@SETTINGS
@given(
    suffix=st.sampled_from(sorted(READERS)),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
)
def test_truncated_or_bit_flipped_valid_files(suffix, cut, flips):
    data = bytearray(VALID[suffix])
    for pos, value in flips:
        data[int(pos * (len(data) - 1))] = value
    _check(suffix, bytes(data[: max(1, int(cut * len(data)))]))


TRANSFORMS = [
    T.EnsureRGB(), T.CTWindow(), T.CTMultiWindow(), T.ShadesOfGray(), T.HairRemoval(), T.ForegroundZScore(),
    T.UltrasoundFanCrop(), T.RandSpeckleNoise(prob=1.0), T.InvertMonochrome1(), T.CLAHE(),
]  # fmt: skip


@st.composite
def images(draw):
    ndim = draw(st.sampled_from([2, 3, 4]))  # channel-first [C, H, W] / [C, H, W, D]; 2 = a missing channel axis
    shape = [draw(st.integers(1, 5))] + [draw(st.integers(1, 12)) for _ in range(ndim - 1)]
    kind = draw(st.sampled_from(["uniform", "constant", "hu", "special"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "uniform":
        arr = rng.random(shape)
    elif kind == "constant":
        arr = np.full(shape, draw(st.floats(-1e4, 1e4)))
    elif kind == "hu":
        arr = rng.uniform(-1024, 3000, shape)
    else:
        arr = rng.random(shape)
        arr.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return torch.as_tensor(arr, dtype=torch.float32)


@SETTINGS
@given(img=images(), index=st.integers(0, len(TRANSFORMS) - 1))
def test_transforms_raise_only_value_errors(img, index):
    transform = TRANSFORMS[index]
    try:
        out = transform(img.clone())
    except ValueError as e:
        assert str(e)
    else:
        assert isinstance(out, torch.Tensor) and out.ndim == img.ndim

"""Serving runtime of an exported student: decode an image, preprocess it as the bundle did, predict.

This module is shipped verbatim (as ``rd_runtime.py``) inside every serving folder written by
:func:`monai_rd.deploy.serving.export_serving` and inside the MLflow pyfunc model, so it imports nothing of
``monai_rd`` and only torch, numpy, Pillow and (for DICOM) pydicom 2.4 or 3.x. The bundle's evaluation
preprocessing travels as a pickled list of MONAI transforms (``preprocessing.pkl``); unpickling it needs
``monai`` and the ``monai_rd.transforms`` source, which the folder carries under ``code/``.

A serving folder holds::

    serving.json        class names, image size, activation, format version
    student.ts          TorchScript h(S(x)): [B, 3, S, S] in [0, 1] -> logits [B, C]
    preprocessing.pkl   the bundle's evaluation transforms after the loader, keyed "image"
    code/               rd_runtime.py and the monai_rd.transforms source the pickle refers to
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import pickle
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1
META_FILE = "serving.json"
MODEL_FILE = "student.ts"
PREPROCESSING_FILE = "preprocessing.pkl"
CODE_DIR = "code"
IMAGE_KEY = "image"

__all__ = [
    "ServingModel",
    "decode_image",
    "decode_dicom",
    "decode_dataset",
    "series_key",
    "middle_slice",
    "read_series",
    "read_image",
    "images_from_input",
    "FORMAT_VERSION",
]


def decode_dicom(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """DICOM bytes -> ``[C, H, W]`` float32 pixel values, as a DICOM reader would load them.

    Rescale slope and intercept are applied, MONOCHROME1 is inverted (``min + max - x``) so that bright means
    dense as in MONOCHROME2, and of a multi-frame greyscale file the middle frame is taken. Works with pydicom
    2.4 and 3.x.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as e:  # pydicom raises many types; the caller needs the name and the reason
        raise ValueError(f"{name}: not a readable DICOM file ({type(e).__name__}: {e}).") from e
    return decode_dataset(ds, name)


def decode_dataset(ds, name: str = "<dataset>") -> np.ndarray:
    """A pydicom ``Dataset`` -> ``[C, H, W]`` float32, as :func:`decode_dicom` describes."""
    try:
        pixels = ds.pixel_array
    except Exception as e:
        raise ValueError(f"{name}: not a readable DICOM image ({type(e).__name__}: {e}).") from e
    arr = np.asarray(pixels, dtype=np.float64)
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[frames // 2]
    arr = arr * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = arr.min() + arr.max() - arr
    arr = arr[None] if samples == 1 else np.moveaxis(arr, -1, 0)
    return arr.astype(np.float32)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Image file bytes (PNG, JPEG, BMP, TIFF or DICOM) -> ``[C, H, W]`` float32, channel first.

    Natural images are read by Pillow exactly as MONAI's ``PILReader`` (no mode conversion); DICOM (``DICM``
    at byte 128) through :func:`decode_dicom`.
    """
    if len(data) >= 132 and data[128:132] == b"DICM":
        return decode_dicom(data, name)
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img)
    except Exception as e:
        raise ValueError(f"{name}: neither DICOM nor an image Pillow can read ({type(e).__name__}: {e}).") from e
    arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    return arr.astype(np.float32)


def series_key(ds) -> tuple:
    """Sort key of a slice: position along the slice normal, or InstanceNumber without geometry."""
    pos = getattr(ds, "ImagePositionPatient", None)
    orient = getattr(ds, "ImageOrientationPatient", None)
    if pos is not None and orient is not None and len(orient) == 6:
        normal = np.cross(np.asarray(orient[:3], float), np.asarray(orient[3:], float))
        return (0, float(np.dot(normal, np.asarray(pos, float))))
    return (1, float(getattr(ds, "InstanceNumber", 0) or 0))


def read_series(folder: str | os.PathLike) -> np.ndarray:
    """The middle slice of the one DICOM series in ``folder`` -> ``[C, H, W]`` float32 (see :func:`decode_dicom`).

    Slices are ordered along the slice normal (ImagePositionPatient . normal of ImageOrientationPatient), or by
    InstanceNumber without geometry. Non-DICOM files (``DICOMDIR`` excepted) are ignored; a folder holding
    several series (SeriesInstanceUID) or none is refused, naming the folder.
    """
    import pydicom

    folder = os.fspath(folder)
    slices = []
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                head = f.read(132)
            if name.upper() == "DICOMDIR" or len(head) < 132 or head[128:132] != b"DICM":
                continue
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            slices.append((str(getattr(ds, "SeriesInstanceUID", "")), series_key(ds), path))
    series = sorted({s[0] for s in slices})
    if not slices:
        raise ValueError(f"{folder!r} holds no DICOM file (files with 'DICM' at byte 128).")
    if len(series) > 1:
        raise ValueError(f"{folder!r} holds {len(series)} DICOM series {series}; give one series per folder.")
    path = middle_slice([(key, path) for _, key, path in slices])
    with open(path, "rb") as f:
        return decode_dicom(f.read(), path)


def middle_slice(items: Sequence[tuple[tuple, Any]]) -> Any:
    """Of ``(series_key(ds), payload)`` pairs of one series, the payload of the middle slice along the normal."""
    ordered = sorted(items, key=lambda item: item[0])
    return ordered[len(ordered) // 2][1]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A file (PNG, JPEG, DICOM...) or a DICOM series folder -> ``[C, H, W]`` float32."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return read_series(path)
    with open(path, "rb") as f:
        return decode_image(f.read(), path)


def _from_base64(value: str | bytes, name: str) -> np.ndarray:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"{name}: a string input must be a base64-encoded image file ({e}).") from e
    return decode_image(data, name)


def _array_images(arr: np.ndarray) -> list[np.ndarray]:
    if arr.ndim == 3:  # [B, H, W] greyscale
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 2, 3, 4):
        raise ValueError(
            f"An array input must be a batch [B, C, H, W] (C in 1..4) or [B, H, W] of decoded images; got shape "
            f"{tuple(arr.shape)}."
        )
    return [np.asarray(a, dtype=np.float32) for a in arr]


def images_from_input(model_input: Any) -> list[np.ndarray]:
    """Every accepted input form -> a list of ``[C, H, W]`` float32 images (not yet preprocessed).

    Accepted: a numeric array/tensor batch ``[B, C, H, W]`` or ``[B, H, W]`` of decoded images (pixel values as
    the bundle's loader yields them, e.g. 0-255 for PNG bundles); a sequence/array of base64 strings or raw
    ``bytes`` of image files (PNG, JPEG, DICOM...); a mapping or pandas DataFrame with an ``"image"`` column of
    either.
    """
    if hasattr(model_input, "columns"):  # pandas DataFrame (MLflow's dataframe_split / instances)
        if IMAGE_KEY not in model_input.columns:
            raise ValueError(f"A table input needs an {IMAGE_KEY!r} column; got columns {list(model_input.columns)}.")
        model_input = list(model_input[IMAGE_KEY])
    elif isinstance(model_input, Mapping):
        if IMAGE_KEY not in model_input:
            raise ValueError(f"A mapping input needs an {IMAGE_KEY!r} key; got keys {sorted(map(str, model_input))}.")
        model_input = model_input[IMAGE_KEY]
    if torch.is_tensor(model_input):
        model_input = model_input.detach().cpu().numpy()
    if isinstance(model_input, (str, bytes)):
        model_input = [model_input]
    if isinstance(model_input, np.ndarray) and model_input.dtype.kind in "biuf":
        return _array_images(model_input)
    items = list(model_input)
    if items and all(isinstance(v, (str, bytes)) for v in items):
        return [
            _from_base64(v, f"input {i}") if isinstance(v, str) else decode_image(v, f"input {i}")
            for i, v in enumerate(items)
        ]
    if items and all(isinstance(v, np.ndarray) for v in items):  # decoded images, possibly of different sizes
        return [_array_images(v[None])[0] for v in items]
    if items and all(isinstance(v, list) for v in items):
        return _array_images(np.asarray(items, dtype=np.float32))
    raise ValueError(
        "Unsupported input: give an array batch [B, C, H, W] / [B, H, W], or base64 strings (or bytes) of image "
        f"files, or a table/mapping with an {IMAGE_KEY!r} column; got {type(model_input).__name__}."
    )


class ServingModel:
    """A serving folder loaded for prediction (see the module docstring for its files).

    Args:
        path: the serving folder.
        device: where the TorchScript student runs.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        self.path = os.fspath(path)
        meta_path = os.path.join(self.path, META_FILE)
        if not os.path.isfile(meta_path):
            raise FileNotFoundError(
                f"{meta_path!r} not found: {self.path!r} is not a serving folder (write one with "
                "monai_rd.deploy.export_serving / `monai-rd label-bundle`)."
            )
        with open(meta_path, encoding="utf-8") as f:
            self.meta = json.load(f)
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path!r} has format_version {self.meta.get('format_version')!r}; this runtime "
                f"reads {FORMAT_VERSION}."
            )
        self.class_names: list[str] = list(self.meta["class_names"])
        self.image_size = int(self.meta["image_size"])
        self.activation = self.meta["activation"]
        self.device = torch.device(device)
        self.model = torch.jit.load(os.path.join(self.path, MODEL_FILE), map_location=self.device).eval()
        with open(os.path.join(self.path, PREPROCESSING_FILE), "rb") as f:
            blob = f.read()  # written by export_serving from the bundle's own evaluation transforms
        try:
            self.transforms = pickle.loads(blob)
        except ModuleNotFoundError:  # no monai_rd here: use the monai_rd.transforms source the folder carries
            code = os.path.join(self.path, CODE_DIR)
            if code not in sys.path:
                sys.path.insert(0, code)
            self.transforms = pickle.loads(blob)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """``[C, H, W]`` decoded image -> ``[3, S, S]`` float32 in [0, 1], by the bundle's evaluation transforms."""
        item = {IMAGE_KEY: torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)}
        for t in self.transforms:
            item = t(item)
        out = torch.as_tensor(item[IMAGE_KEY], dtype=torch.float32)
        if tuple(out.shape) != (3, self.image_size, self.image_size):
            raise ValueError(
                f"Preprocessing gave shape {tuple(out.shape)}, expected (3, {self.image_size}, {self.image_size})."
            )
        return out.as_subclass(torch.Tensor) if type(out) is not torch.Tensor else out

    @torch.no_grad()
    def predict_proba(self, model_input: Any) -> np.ndarray:
        """Any accepted input (see :func:`images_from_input`) -> probabilities ``[B, C]`` (float32)."""
        images = images_from_input(model_input)
        batch = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        logits = self.model(batch)
        probs = torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=1)
        return probs.cpu().numpy()

    def results(self, probs: np.ndarray) -> list[dict]:
        """Probabilities ``[B, C]`` -> one ``{"label", "probabilities": {class: p}}`` per image.

        ``label`` is the arg-max class (softmax) or the list of classes with ``p >= 0.5`` (sigmoid, multi-label).
        """
        out = []
        for row in np.asarray(probs, dtype=np.float64):
            named = {c: float(p) for c, p in zip(self.class_names, row)}
            if self.activation == "sigmoid":
                label: Any = [c for c, p in named.items() if p >= 0.5]
            else:
                label = self.class_names[int(np.argmax(row))]
            out.append({"label": label, "probabilities": named})
        return out

    def predict(self, model_input: Any) -> list[dict]:
        return self.results(self.predict_proba(model_input))


def load(path: str | os.PathLike, device: str = "cpu") -> ServingModel:
    return ServingModel(path, device)


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Predict image files with a serving folder.")
    p.add_argument("model", help="serving folder")
    p.add_argument("files", nargs="+", help="image files or DICOM series folders")
    args = p.parse_args(argv)
    model = ServingModel(args.model)
    for path, res in zip(args.files, model.predict([read_image(p) for p in args.files])):
        print(json.dumps({"file": path, **res}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

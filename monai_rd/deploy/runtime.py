"""Serving runtime of an exported student: read an image file with the training reader, preprocess it as the
bundle did, predict.

This module is shipped verbatim (as ``rd_runtime.py``) inside every serving folder written by
:func:`monai_rd.deploy.serving.export_serving` and inside the MLflow pyfunc model, so it imports nothing of
``monai_rd`` itself. The bundle's evaluation preprocessing travels as a pickled list of MONAI transforms
(``preprocessing.pkl``) *with its loader*: the ``LoadImaged`` and reader the bundle trained and infers with (for
the clinical bundles :class:`monai_rd.data.MedicalImageReader`: DICOM, NIfTI, PNG/JPEG/BMP/TIFF). Unpickling it
needs ``monai`` and the ``monai_rd`` source it refers to (``monai_rd.data.readers``, ``monai_rd.transforms``,
``monai_rd.utils``), which the folder carries under ``code/``: the package's own files, copied when the folder is
written, so serving decodes with the training reader's code, never a second decoder. (One exception: where
pydicom 3 is missing, as in the MONAI Label venv that monailabel pins to pydicom 2.4, DICOM is decoded by this
module's pydicom 2 fallback, :func:`decode_dicom`.)

Input is image *files* (bytes, or base64 strings of them): each is written to a temporary file with the suffix
its magic numbers call for (:func:`sniff_suffix`) and read by the loader; of a volume (multi-frame DICOM, a NIfTI
volume, a DICOM series folder) a 2D model takes the middle slice, as the bundle's inference does by default.

A serving folder holds::

    serving.json        class names, image size, activation, format version, loader_steps
    student.onnx        ONNX h(S(x)), run by onnxruntime: input "image" [B, 3, S, S] in [0, 1] -> logits [B, C]
    preprocessing.pkl   the bundle's evaluation transforms, its loader first (loader_steps of them), keyed "image"
    code/               rd_runtime.py and the monai_rd source the pickle refers to
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 3
META_FILE = "serving.json"
MODEL_FILE = "student.onnx"
PREPROCESSING_FILE = "preprocessing.pkl"
CODE_DIR = "code"
IMAGE_KEY = "image"

__all__ = [
    "ServingModel",
    "sniff_suffix",
    "file_bytes",
    "decode_dicom",
    "decode_dataset",
    "series_key",
    "middle_slice",
    "read_series",
    "FORMAT_VERSION",
]


def sniff_suffix(data: bytes, name: str = "<bytes>") -> str:
    """The file suffix the training reader needs for image file bytes: from the bytes' magic numbers.

    DICOM (``DICM`` at byte 128) ``.dcm``; NIfTI-1/2 ``.nii`` (``.nii.gz`` when gzip-compressed); PNG, JPEG,
    BMP and TIFF their own. Anything else is refused, naming ``name``.
    """
    if len(data) >= 132 and data[128:132] == b"DICM":
        return ".dcm"
    if data[:2] == b"\x1f\x8b":
        try:
            head = gzip.GzipFile(fileobj=io.BytesIO(data)).read(348)
        except (OSError, EOFError) as e:
            raise ValueError(f"{name}: gzip data that cannot be decompressed ({e}).") from e
        if _is_nifti(head):
            return ".nii.gz"
        raise ValueError(f"{name}: gzip-compressed, but not a NIfTI volume.")
    if _is_nifti(data[:348]):
        return ".nii"
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    raise ValueError(
        f"{name}: not an image file the model reads (DICOM with the DICM marker, NIfTI, PNG, JPEG, BMP or TIFF)."
    )


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def _is_nifti(head: bytes) -> bool:
    if len(head) < 348:
        return False
    return head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00", b"ni2\x00")


def _pydicom3() -> bool:
    try:
        import pydicom.pixels  # noqa: F401  (pydicom 3: what the training reader decodes with)
    except ImportError:
        return False
    return True


def file_bytes(model_input: Any) -> list[bytes]:
    """Every accepted input form -> the list of image file bytes to predict.

    Accepted: base64 strings (or raw ``bytes``) of image files (DICOM, NIfTI, PNG, JPEG, BMP, TIFF), alone, as a
    list/array, or as the ``"image"`` column of a pandas DataFrame (MLflow's ``dataframe_split``) or mapping.
    Decoded pixel arrays are refused: the model decodes the file itself, with the training reader.
    """
    if hasattr(model_input, "columns"):  # pandas DataFrame (MLflow's dataframe_split / instances)
        if IMAGE_KEY not in model_input.columns:
            raise ValueError(f"A table input needs an {IMAGE_KEY!r} column; got columns {list(model_input.columns)}.")
        model_input = list(model_input[IMAGE_KEY])
    elif isinstance(model_input, Mapping):
        if IMAGE_KEY not in model_input:
            raise ValueError(f"A mapping input needs an {IMAGE_KEY!r} key; got keys {sorted(map(str, model_input))}.")
        model_input = model_input[IMAGE_KEY]
    if isinstance(model_input, (str, bytes)):
        model_input = [model_input]
    items = list(model_input) if isinstance(model_input, (list, tuple, np.ndarray)) else None
    if items and all(
        _strings(v) for v in items
    ):  # cells holding lists of files (MLflow makes {"image": [...]} one row)
        items = [f for v in items for f in v]
    if items and all(isinstance(v, (str, bytes)) for v in items):
        return [_from_base64(v, f"input {i}") if isinstance(v, str) else v for i, v in enumerate(items)]
    if (
        torch.is_tensor(model_input)
        or (isinstance(model_input, np.ndarray) and model_input.dtype.kind in "biuf")
        or (items and all(isinstance(v, (list, np.ndarray)) for v in items))
    ):
        raise ValueError(
            "Decoded pixel arrays are not accepted (serving format 2): send the image files themselves, "
            "base64-encoded (DICOM, NIfTI, PNG, JPEG, BMP, TIFF), so that the model decodes them with the training "
            'reader, e.g. {"inputs": ["<base64 of the file>"]}.'
        )
    raise ValueError(
        "Unsupported input: give base64 strings (or bytes) of image files, alone, as a list, or as a table/mapping "
        f"with an {IMAGE_KEY!r} column; got {type(model_input).__name__}."
    )


def _strings(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple, np.ndarray))
        and len(value) > 0
        and all(isinstance(v, (str, bytes)) for v in value)
    )


def _from_base64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"{name}: a string input must be a base64-encoded image file ({e}).") from e


def decode_dicom(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """DICOM bytes -> ``[C, H, W]`` float32: the pydicom 2 fallback, used only where pydicom 3 is missing.

    The training reader (shipped in ``code/monai_rd/data/readers``) needs pydicom 3; the MONAI Label venv pins
    pydicom 2.4 (monailabel's pydicom-seg), and only there does this approximation decode DICOM.

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


class ServingModel:
    """A serving folder loaded for prediction (see the module docstring for its files).

    Args:
        path: the serving folder.
        device: where the student runs: ``"cpu"``, or ``"cuda"`` (onnxruntime's CUDA provider where installed).
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
                f"reads {FORMAT_VERSION}: export the run again (monai_rd.deploy.export_run_serving)."
            )
        self.class_names: list[str] = list(self.meta["class_names"])
        self.image_size = int(self.meta["image_size"])
        self.activation = self.meta["activation"]
        self.loader_steps = int(self.meta["loader_steps"])
        self.device = torch.device(device)
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(os.path.join(self.path, MODEL_FILE), providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        with open(os.path.join(self.path, PREPROCESSING_FILE), "rb") as f:
            blob = f.read()  # written by export_serving from the bundle's own evaluation transforms
        code = os.path.join(self.path, CODE_DIR)
        if code not in sys.path:  # no monai_rd here: the folder's copy of the reader and transforms is used
            sys.path.append(code)
        self.transforms = pickle.loads(blob)
        self.loader = self.transforms[: self.loader_steps]
        self.after_loader = self.transforms[self.loader_steps :]

    def load_file(self, path: str | os.PathLike) -> dict:
        """A file or DICOM series folder -> ``{"image": [C, H, W] or [C, S, H, W], "slice": k}``: the training
        reader's output (the bundle's own loader) and the slice a 2D model takes (the middle one, as the bundle's
        inference does by default; ``-1`` for a 2D image)."""
        path = os.fspath(path)
        if not _pydicom3() and self._is_dicom(path):  # the MONAI Label venv (pydicom 2.4) only
            image = read_series(path) if os.path.isdir(path) else decode_dicom(open(path, "rb").read(), path)
            return {IMAGE_KEY: torch.as_tensor(image), "slice": -1}
        item: Any = {IMAGE_KEY: path}
        for t in self.loader:
            item = t(item)
        image = item[IMAGE_KEY]
        return {IMAGE_KEY: image, "slice": int(image.shape[1]) // 2 if image.ndim == 4 else -1}

    @staticmethod
    def _is_dicom(path: str) -> bool:
        if os.path.isdir(path):
            return True
        with open(path, "rb") as f:
            return f.read(132)[128:132] == b"DICM"

    def load_bytes(self, data: bytes, name: str = "<bytes>") -> dict:
        """Image file bytes -> what :meth:`load_file` returns for the same file (decoded from a temporary copy
        named by :func:`sniff_suffix`); errors name ``name``, not the temporary file."""
        suffix = sniff_suffix(data, name)
        with tempfile.TemporaryDirectory(prefix="rd_serving_") as tmp:
            path = os.path.join(tmp, "input" + suffix)
            with open(path, "wb") as f:
                f.write(data)
            try:
                return self.load_file(path)
            except Exception as e:  # the reader names the temporary file: name the input instead
                msg = str(e)
                msg = msg.replace(repr(path), repr(name)).replace(path, name) if path in msg else f"{name}: {msg}"
                raise ValueError(msg) from e

    def preprocess(self, item: Mapping) -> torch.Tensor:
        """:meth:`load_file`'s item -> ``[3, S, S]`` float32 in [0, 1], by the bundle's evaluation transforms."""
        item = dict(item)
        for t in self.after_loader:
            item = t(item)
        out = torch.as_tensor(item[IMAGE_KEY], dtype=torch.float32)
        if tuple(out.shape) != (3, self.image_size, self.image_size):
            raise ValueError(
                f"Preprocessing gave shape {tuple(out.shape)}, expected (3, {self.image_size}, {self.image_size})."
            )
        return out.as_subclass(torch.Tensor) if type(out) is not torch.Tensor else out

    def _finite(self, image: torch.Tensor, name: str) -> torch.Tensor:
        """``image`` unchanged, or a ``ValueError`` naming ``name`` when it holds NaN/Inf: never a label on NaN (the
        bundles' inference refuses such a file with the same words)."""
        bad = int(image.numel() - torch.isfinite(image).sum())
        if bad:
            raise ValueError(f"{name}: holds NaN/Inf pixel values ({bad} of {image.numel()} after loading and "
                             "preprocessing): a prediction on them would be NaN; fix or remove the file.")  # fmt: skip
        return image

    @torch.no_grad()
    def _proba(self, items: Sequence[Mapping], names: Sequence[str] | None = None) -> np.ndarray:
        names = names or [f"input {i}" for i in range(len(items))]
        batch = torch.stack([self._finite(self.preprocess(item), n) for item, n in zip(items, names)]).numpy()
        logits = torch.from_numpy(self.session.run(None, {self.input_name: batch})[0])
        probs = torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=1)
        return probs.cpu().numpy()

    def predict_proba(self, model_input: Any) -> np.ndarray:
        """Image files as :func:`file_bytes` accepts them -> probabilities ``[B, C]`` (float32)."""
        data = file_bytes(model_input)
        names = [f"input {i}" for i in range(len(data))]
        return self._proba([self.load_bytes(d, n) for d, n in zip(data, names)], names)

    def predict_files(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """Image files or DICOM series folders on disk -> probabilities ``[B, C]`` (float32)."""
        return self._proba([self.load_file(p) for p in paths], [os.fspath(p) for p in paths])

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
    for path, res in zip(args.files, model.results(model.predict_files(args.files))):
        print(json.dumps({"file": path, **res}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

"""A DICOM reader for MONAI that gets right what ``PydicomReader`` gets wrong (see DESIGN.md section 6).

Array convention (what :meth:`DicomReader.get_data` returns, before ``EnsureChannelFirst``):

==================================  =========================  ========================
source                              grey (MONOCHROME1/2)       colour (RGB/YBR/PALETTE)
==================================  =========================  ========================
one single-frame file               ``[H, W]``                 ``[H, W, 3]``
one multi-frame file                ``[F, H, W]``              ``[F, H, W, 3]``
a folder holding one series         ``[S, H, W]``              ``[S, H, W, 3]``
==================================  =========================  ========================

``H`` are the DICOM rows (top to bottom as displayed), ``W`` the columns (left to right), ``F`` the frames in
file order and ``S`` the slices sorted along the slice normal (``ImagePositionPatient`` projected on
``row x column`` direction cosines; ``InstanceNumber`` when positions are missing). The meta dict says
``original_channel_dim = -1`` for colour and NaN for grey (MONAI's "no channel", which collates with -1), so
``LoadImage(ensure_channel_first=True)`` gives ``[C, H, W]`` or ``[C, F|S, H, W]``: rows stay rows, unlike
``PydicomReader``, which transposes and swaps the frame axis. The ``affine`` maps array indices (in this order)
to RAS world coordinates (DICOM LPS with x and y negated, as MONAI does) when the file has patient geometry,
else it is a diagonal of pixel spacings.

Values: stored values -> modality LUT (``RescaleSlope``/``RescaleIntercept``, per file/frame) -> MONOCHROME1
inverted over the rescaled range of the stored bits (``min + max - x``, what GDCM/SimpleITK return) ->
optionally VOI LUT / window (``voi=True``; output scaled to [0, 1]). YBR colour is converted to RGB, PALETTE
COLOR through its lookup table. Compressed transfer syntaxes decode through pydicom's pixel backends
(pylibjpeg-libjpeg: JPEG baseline/extended/lossless and JPEG-LS; pylibjpeg-openjpeg: JPEG 2000;
pylibjpeg-rle: RLE), with a SimpleITK (GDCM) fallback for what those cannot decode (12-bit JPEG extended
with an unusual scan header, for instance).

Only allow-listed technical tags (:data:`monai_rd.data.readers.phi.SAFE_DICOM_TAGS`) reach the meta dict, and no error
message quotes a patient tag.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from monai.utils import ensure_tuple

from monai_rd.data.errors import BadInputError
from monai_rd.data.readers.base import FileImageReader
from monai_rd.data.readers.phi import SAFE_DICOM_TAGS, dicom_safe_meta, filter_meta

__all__ = [
    "DicomReadError",
    "DicomSeriesInfo",
    "DicomReader",
    "is_dicom_file",
    "find_dicom_series",
    "read_dicom",
]

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_SKIP_NAMES = {"DICOMDIR"}


class DicomReadError(BadInputError):
    """A DICOM file or folder that cannot be read as an image; the message names the path and the reason."""


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is a file with the ``DICM`` magic at byte 128 (Part 10 file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


@dataclass
class DicomSeriesInfo:
    """One series found in a folder: what a user needs to pick it (never patient data)."""

    index: int
    series_uid: str
    modality: str
    description: str
    files: list[str] = field(default_factory=list)
    multi_frame: bool = False

    @property
    def num_slices(self) -> int:
        return len(self.files)

    def describe(self) -> str:
        return (
            f"#{self.index}: modality={self.modality or '?'} description={self.description or '(none)'!r} "
            f"files={self.num_slices} SeriesInstanceUID={self.series_uid}"
        )


# ---------------------------------------------------------------------------------------------- single files


def _dcmread(path: str, stop_before_pixels: bool = False):
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not os.path.isfile(path):
        raise DicomReadError(f"{path!r}: no such file.")
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as e:
        raise DicomReadError(f"{path!r} is not a DICOM file (no 'DICM' marker after the 128-byte preamble): {e}") from e
    except Exception as e:  # pydicom raises many types on damaged headers
        raise DicomReadError(f"{path!r}: the DICOM header cannot be parsed ({type(e).__name__}: {e}).") from e


def _sop_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    name = getattr(uid, "name", None) or str(uid or "unknown SOP class")
    return f"{name}, modality {ds.get('Modality', '?')}"


def _decode_stored(ds, path: str, sitk_fallback: bool) -> tuple[np.ndarray, str]:
    """Stored pixel values ``[F?, H, W, 3?]`` and the photometric interpretation of the returned array."""
    from pydicom.pixels import get_decoder

    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomReadError(f"{path!r} has no pixel data ({_sop_name(ds)}): it is not an image.")
    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    if tsyntax is None:
        raise DicomReadError(f"{path!r} has no TransferSyntaxUID in its file meta: the pixel encoding is unknown.")
    if not tsyntax.is_compressed:
        expected = _expected_bytes(ds)
        actual = len(ds.PixelData) if "PixelData" in ds else None
        if expected is not None and actual is not None and actual < expected:
            raise DicomReadError(
                f"{path!r} is truncated: its pixel data holds {actual} bytes, {expected} expected for "
                f"{ds.get('Rows')}x{ds.get('Columns')} pixels x {int(ds.get('NumberOfFrames', 1) or 1)} frame(s) "
                f"x {ds.get('SamplesPerPixel', 1)} sample(s) of {ds.get('BitsAllocated')} bits."
            )
    try:
        decoder = get_decoder(tsyntax)
        arr, meta = decoder.as_array(ds, as_rgb=False)
        return arr, str(meta.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    except Exception as e:
        pydicom_error = f"{type(e).__name__}: {e}"
    if sitk_fallback and tsyntax.is_compressed:
        arr = _decode_with_simpleitk(ds, path)
        if arr is not None:
            return arr, str(ds.get("PhotometricInterpretation", ""))
    raise DicomReadError(
        f"{path!r}: the pixel data ({tsyntax.name}) cannot be decoded: {pydicom_error}. Install the decoders "
        "(pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle) or python-gdcm."
    )


def _expected_bytes(ds) -> int | None:
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1))
        if samples == 3 and str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
            samples = 2  # chroma subsampled horizontally: Y Y Cb Cr per pixel pair
        n = int(ds.Rows) * int(ds.Columns) * frames * samples
    except (AttributeError, TypeError, ValueError):
        return None
    return (n * bits + 7) // 8


def _decode_with_simpleitk(ds, path: str) -> np.ndarray | None:
    """Stored values read through GDCM (SimpleITK), for grey images only; None if that fails too.

    GDCM returns ``slope * v + intercept`` with ``v`` the stored value, inverted (``2**bits - 1 - v``) for
    MONOCHROME1: both are undone here so that the one value pipeline of :class:`DicomReader` applies.
    """
    try:
        import SimpleITK as sitk
    except ImportError:
        return None
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        return None
    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(path)
        out = sitk.GetArrayFromImage(reader.Execute()).astype(np.float64)
    except Exception:
        return None
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    stored = np.rint((out - intercept) / slope)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        lo, hi = _stored_range(ds)
        stored = lo + hi - stored
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    stored = stored.reshape((frames, int(ds.Rows), int(ds.Columns)) if frames > 1 else (int(ds.Rows), int(ds.Columns)))
    return stored


def _stored_range(ds) -> tuple[float, float]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _frame_rescale(ds, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (slope, intercept): top level, else shared or per-frame functional groups, else (1, 0)."""
    slopes = np.ones(num_frames)
    intercepts = np.zeros(num_frames)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        slopes[:] = float(ds.get("RescaleSlope", 1) or 1)
        intercepts[:] = float(ds.get("RescaleIntercept", 0) or 0)
        return slopes, intercepts

    def from_group(group):
        seq = group.get("PixelValueTransformationSequence")
        if seq:
            item = seq[0]
            return float(item.get("RescaleSlope", 1) or 1), float(item.get("RescaleIntercept", 0) or 0)
        return None

    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        values = from_group(shared[0])
        if values is not None:
            slopes[:], intercepts[:] = values
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) == num_frames:
        for i, group in enumerate(per_frame):
            values = from_group(group)
            if values is not None:
                slopes[i], intercepts[i] = values
    return slopes, intercepts


def _window(ds, path: str, window: tuple[float, float] | None) -> tuple[float, float, str]:
    if window is not None:
        return float(window[0]), float(window[1]), "LINEAR"
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        raise DicomReadError(
            f"{path!r}: voi=True was asked but the file has neither a VOI LUT nor WindowCenter/WindowWidth; "
            "pass window=(center, width) to the reader."
        )
    first = lambda v: float(v[0]) if isinstance(v, Iterable) and not isinstance(v, str) else float(v)  # noqa: E731
    return first(center), first(width), str(ds.get("VOILUTFunction", "LINEAR")).upper()


def _apply_window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing, output in [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    if width < 1:
        raise ValueError(f"window width must be >= 1 for the LINEAR VOI function, got {width}.")
    return np.clip(((x - (center - 0.5)) / (width - 1.0)) + 0.5, 0.0, 1.0)


def _apply_voi_lut_sequence(ds, x: np.ndarray) -> np.ndarray:
    """The first item of ``VOILUTSequence`` applied to modality values, output in [0, 1]."""
    item = ds.VOILUTSequence[0]
    descriptor = [int(v) for v in item.LUTDescriptor]
    n_entries = descriptor[0] or 65536
    first_mapped, bits = descriptor[1], descriptor[2]
    lut_data = item.LUTData
    if isinstance(lut_data, (bytes, bytearray)):
        lut = np.frombuffer(lut_data, dtype=np.uint8 if bits <= 8 else np.uint16)
    else:
        lut = np.asarray(lut_data, dtype=np.float64)
    lut = lut[:n_entries].astype(np.float64)
    index = np.clip(np.rint(x) - first_mapped, 0, len(lut) - 1).astype(np.int64)
    return lut[index] / float(2**bits - 1)


def read_dicom(
    path: str | os.PathLike,
    voi: bool = False,
    window: tuple[float, float] | None = None,
    invert_monochrome1: bool = True,
    rescale: bool = True,
    sitk_fallback: bool = True,
    allowed_tags: Iterable[str] = SAFE_DICOM_TAGS,
) -> tuple[np.ndarray, dict]:
    """Read one DICOM file: ``(array, meta)`` with the axes and values of :class:`DicomReader` (float32).

    Raises:
        DicomReadError: not DICOM, no pixel data, truncated, undecodable (the path and the reason are named).
    """
    path = os.fspath(path)
    ds = _dcmread(path)
    stored, photometric = _decode_stored(ds, path, sitk_fallback)
    original_pi = str(ds.get("PhotometricInterpretation", ""))
    num_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    steps = []

    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        image = apply_color_lut(stored, ds).astype(np.float32)
        descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
        if descriptor is not None and int(descriptor[2]) == 16:
            image /= 257.0  # 16-bit LUT entries -> the 8-bit range of the other colour images
        steps.append("palette_to_rgb")
    elif samples == 3:
        if photometric in ("YBR_FULL", "YBR_FULL_422"):
            from pydicom.pixels import convert_color_space

            stored = convert_color_space(stored, "YBR_FULL", "RGB")
            steps.append("ybr_to_rgb")
        elif photometric not in ("RGB",):
            raise DicomReadError(f"{path!r}: colour photometric interpretation {photometric!r} is not supported.")
        image = stored.astype(np.float32)
    elif samples == 1:
        x = stored.astype(np.float64)
        frames_view = x.reshape((num_frames,) + x.shape[-2:])
        slopes, intercepts = _frame_rescale(ds, num_frames) if rescale else (np.ones(num_frames), np.zeros(num_frames))
        if "ModalityLUTSequence" in ds and rescale:
            from pydicom.pixels import apply_modality_lut

            frames_view = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64).reshape(frames_view.shape)
            steps.append("modality_lut")
            lo, hi = float(frames_view.min()), float(frames_view.max())
            bounds = np.array([[lo, hi]] * num_frames)
        else:
            frames_view = frames_view * slopes[:, None, None] + intercepts[:, None, None]
            if rescale and (np.any(slopes != 1) or np.any(intercepts != 0)):
                steps.append("rescale")
            s_lo, s_hi = _stored_range(ds)
            ends = np.stack([s_lo * slopes + intercepts, s_hi * slopes + intercepts], axis=1)
            bounds = np.sort(ends, axis=1)
        if voi:
            if "VOILUTSequence" in ds and window is None:
                frames_view = _apply_voi_lut_sequence(ds, frames_view)
            else:
                center, width, function = _window(ds, path, window)
                frames_view = _apply_window(frames_view, center, width, function)
            steps.append("voi")
            if original_pi == "MONOCHROME1" and invert_monochrome1:
                frames_view = 1.0 - frames_view
                steps.append("invert_monochrome1")
        elif original_pi == "MONOCHROME1" and invert_monochrome1:
            frames_view = bounds[:, 0, None, None] + bounds[:, 1, None, None] - frames_view
            steps.append("invert_monochrome1")
        image = frames_view.reshape(stored.shape).astype(np.float32)
    else:
        raise DicomReadError(f"{path!r}: SamplesPerPixel={samples} is not supported (1 or 3 expected).")

    meta = dicom_safe_meta(ds, allowed_tags)
    meta["rd_steps"] = ",".join(steps) if steps else "none"
    colour = image.ndim == (3 if num_frames == 1 else 4)
    # the state of the returned array: a MONOCHROME1 image the reader did not invert is still MONOCHROME1
    if colour:
        meta["rd_photometric_interpretation"] = "RGB"
    else:
        meta["rd_photometric_interpretation"] = (
            "MONOCHROME1" if "invert_monochrome1" not in steps and original_pi == "MONOCHROME1" else "MONOCHROME2"
        )
    meta["affine"] = _file_affine(ds, num_frames)
    meta["original_affine"] = meta["affine"].copy()
    meta["spatial_shape"] = np.asarray(image.shape[:-1] if colour else image.shape)
    meta["original_channel_dim"] = -1 if colour else float("nan")
    meta["space"] = "RAS"
    return image, meta


# ------------------------------------------------------------------------------------------------- geometry

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _direction(ds) -> tuple[np.ndarray, np.ndarray] | None:
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        shared = ds.get("SharedFunctionalGroupsSequence")
        try:
            iop = shared[0].PlaneOrientationSequence[0].ImageOrientationPatient
        except (TypeError, AttributeError, IndexError, KeyError):
            return None
    v = np.asarray([float(x) for x in iop])
    return v[:3], v[3:]


def _spacing(ds) -> tuple[float, float]:
    ps = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if ps is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        try:
            ps = shared[0].PixelMeasuresSequence[0].PixelSpacing
        except (TypeError, AttributeError, IndexError, KeyError):
            ps = None
    if ps is None or len(ps) != 2:
        return 1.0, 1.0
    return float(ps[0]), float(ps[1])


def _affine(origin, row_cos, col_cos, dr, dc, slice_vec, has_slices: bool) -> np.ndarray:
    """Index ``(s, r, c)`` (or ``(r, c)``) -> LPS, converted to RAS; a 4x4 matrix in array-axis order."""
    lps = np.eye(4)
    if has_slices:
        lps[:3, 0] = slice_vec
        lps[:3, 1] = col_cos * dr
        lps[:3, 2] = row_cos * dc
    else:
        lps[:3, 0] = col_cos * dr
        lps[:3, 1] = row_cos * dc
        lps[:3, 2] = slice_vec
    lps[:3, 3] = origin
    return _LPS_TO_RAS @ lps


def _file_affine(ds, num_frames: int) -> np.ndarray:
    dr, dc = _spacing(ds)
    direction = _direction(ds)
    thickness = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
    if direction is None or ds.get("ImagePositionPatient") is None:
        diag = [thickness, dr, dc, 1.0] if num_frames > 1 else [dr, dc, thickness, 1.0]
        return np.diag(diag)
    row_cos, col_cos = direction
    normal = np.cross(row_cos, col_cos)
    origin = np.asarray([float(x) for x in ds.ImagePositionPatient])
    return _affine(origin, row_cos, col_cos, dr, dc, normal * thickness, num_frames > 1)


# --------------------------------------------------------------------------------------------------- series


def _list_folder(folder: str) -> list[str]:
    files = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or name.upper() in _SKIP_NAMES or os.path.isdir(path):
            continue
        files.append(path)
    return files


def find_dicom_series(folder: str | os.PathLike) -> tuple[list[DicomSeriesInfo], list[str]]:
    """Group the DICOM files directly inside ``folder`` by SeriesInstanceUID.

    Returns:
        ``(image_series, non_image_files)``: the series holding pixel data (ordered by modality, description
        and UID, indexed from 0) and the DICOM files without pixel data (SR, RTPLAN, ...).

    Raises:
        DicomReadError: the folder is missing/empty, a file is not DICOM (hidden files and ``DICOMDIR`` are
        the only ones ignored), or an image has no SeriesInstanceUID.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DicomReadError(f"{folder!r} is not a folder.")
    files = _list_folder(folder)
    if not files:
        raise DicomReadError(f"{folder!r} holds no file: expected the DICOM files of one or more series.")
    groups: dict[str, dict] = {}
    non_image = []
    for path in files:
        ds = _dcmread(path, stop_before_pixels=True)
        if not _has_pixels_header(ds):
            non_image.append(path)
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        if not uid:
            raise DicomReadError(f"{path!r} has no SeriesInstanceUID: its series cannot be identified.")
        g = groups.setdefault(
            uid,
            {
                "modality": str(ds.get("Modality", "")),
                "description": str(ds.get("SeriesDescription", "")),
                "files": [],
                "multi_frame": False,
            },
        )
        g["files"].append(path)
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            g["multi_frame"] = True
    ordered = sorted(groups.items(), key=lambda kv: (kv[1]["modality"], kv[1]["description"], kv[0]))
    series = [
        DicomSeriesInfo(i, uid, g["modality"], g["description"], g["files"], g["multi_frame"])
        for i, (uid, g) in enumerate(ordered)
    ]
    return series, non_image


def _has_pixels_header(ds) -> bool:
    # stop_before_pixels drops the element itself; Rows/Columns are the reliable sign of an image
    return ds.get("Rows") is not None and ds.get("Columns") is not None


def select_series(
    folder: str, series: list[DicomSeriesInfo], non_image: list[str], series_uid: str | None, series_index: int | None
) -> DicomSeriesInfo:
    """The series a user asked for, or the only one; otherwise a :class:`DicomReadError` listing them."""
    listing = "\n  ".join(s.describe() for s in series)
    if not series:
        extra = f" ({len(non_image)} DICOM file(s) without pixel data, e.g. SR/RTPLAN)" if non_image else ""
        raise DicomReadError(f"{folder!r} holds no image series{extra}.")
    if series_uid is not None:
        for s in series:
            if s.series_uid == series_uid:
                return s
        raise DicomReadError(f"{folder!r} has no series with SeriesInstanceUID {series_uid!r}; it holds:\n  {listing}")
    if series_index is not None:
        if not 0 <= series_index < len(series):
            raise DicomReadError(f"{folder!r}: series index {series_index} out of range; it holds:\n  {listing}")
        return series[series_index]
    if len(series) > 1:
        raise DicomReadError(
            f"{folder!r} holds {len(series)} series; they are never stacked together. Pick one with "
            f"series_uid=... or series_index=...:\n  {listing}"
        )
    return series[0]


def sort_series_files(files: Sequence[str]) -> tuple[list[str], np.ndarray | None]:
    """The files of one series sorted along the slice normal; returns ``(files, positions_along_normal)``.

    Uses ``ImagePositionPatient`` projected on ``cross(row, column)`` of ``ImageOrientationPatient`` when every
    file has both (and all orientations agree), else ``InstanceNumber`` (positions ``None``).

    Raises:
        DicomReadError: two slices at the same position, or neither positions nor instance numbers.
    """
    headers = [_dcmread(f, stop_before_pixels=True) for f in files]
    directions = [_direction(h) for h in headers]
    if all(d is not None for d in directions) and all(h.get("ImagePositionPatient") is not None for h in headers):
        ref = np.concatenate(directions[0])
        for f, d in zip(files, directions):
            if not np.allclose(np.concatenate(d), ref, atol=1e-3):
                raise DicomReadError(
                    f"{f!r}: its ImageOrientationPatient differs from the rest of the series; slices of different "
                    "orientations cannot be stacked into one volume."
                )
        normal = np.cross(directions[0][0], directions[0][1])
        pos = np.array([float(np.dot([float(x) for x in h.ImagePositionPatient], normal)) for h in headers])
        order = np.argsort(pos, kind="stable")
        sorted_pos = pos[order]
        dup = np.where(np.isclose(np.diff(sorted_pos), 0.0, atol=1e-4))[0]
        if len(dup):
            a, b = files[order[dup[0]]], files[order[dup[0] + 1]]
            raise DicomReadError(
                f"{a!r} and {b!r} lie at the same slice position ({sorted_pos[dup[0]]:.3f} mm along the normal): "
                "the series holds several acquisitions/echoes; split them into separate folders."
            )
        return [files[i] for i in order], sorted_pos
    numbers = [h.get("InstanceNumber") for h in headers]
    if any(n is None for n in numbers):
        missing = files[[n is None for n in numbers].index(True)]
        raise DicomReadError(
            f"{missing!r} has neither ImagePositionPatient/ImageOrientationPatient nor "
            "InstanceNumber: "
            "the slice order cannot be known."
        )
    order = np.argsort([int(n) for n in numbers], kind="stable")
    return [files[i] for i in order], None


# --------------------------------------------------------------------------------------------------- reader


class DicomReader(FileImageReader):
    """MONAI ``ImageReader`` for DICOM files and series folders (``LoadImaged(keys, reader=DicomReader(...))``).

    See the module docstring for the axes and value pipeline.

    Args:
        series_uid: the SeriesInstanceUID to read from a folder holding several series.
        series_index: or its index in the listing (ordered by modality, description, UID; the error raised for
            an ambiguous folder prints that listing).
        voi: apply the VOI LUT (``VOILUTSequence``) or the window (``WindowCenter``/``WindowWidth``, or
            ``window``) and scale to [0, 1]. Grey images only.
        window: ``(center, width)`` overriding the file's window when ``voi`` is True.
        invert_monochrome1: invert MONOCHROME1 images so that high values are bright, as for MONOCHROME2.
        rescale: apply RescaleSlope/RescaleIntercept (or the Modality LUT).
        sitk_fallback: decode through SimpleITK/GDCM what pydicom's decoders cannot.
        allowed_tags: header keywords copied to the meta dict (an allow-list; no patient tag belongs there).
        dtype: output dtype.
    """

    suffixes = DICOM_SUFFIXES
    error = DicomReadError

    def __init__(
        self,
        series_uid: str | None = None,
        series_index: int | None = None,
        voi: bool = False,
        window: Sequence[float] | None = None,
        invert_monochrome1: bool = True,
        rescale: bool = True,
        sitk_fallback: bool = True,
        allowed_tags: Iterable[str] = SAFE_DICOM_TAGS,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        self.series_uid = series_uid
        self.series_index = series_index
        self.voi = voi
        self.window = tuple(window) if window is not None else None
        self.invert_monochrome1 = invert_monochrome1
        self.rescale = rescale
        self.sitk_fallback = sitk_fallback
        self.allowed_tags = tuple(allowed_tags)
        self.dtype = dtype

    def verify_suffix(self, filename) -> bool:
        """True for folders, ``.dcm``/``.dicom``/``.ima`` files, and files carrying the ``DICM`` marker."""
        for name in ensure_tuple(filename):
            name = os.fspath(name)
            if os.path.isdir(name) or name.lower().endswith(DICOM_SUFFIXES) or is_dicom_file(name):
                continue
            return False
        return True

    def _options(self) -> dict:
        return dict(
            voi=self.voi,
            window=self.window,
            invert_monochrome1=self.invert_monochrome1,
            rescale=self.rescale,
            sitk_fallback=self.sitk_fallback,
            allowed_tags=self.allowed_tags,
        )

    def read_series(self, folder: str) -> tuple[np.ndarray, dict]:
        """Read the chosen series of ``folder`` as ``[S, H, W(, 3)]`` (see the class docstring)."""
        series, non_image = find_dicom_series(folder)
        chosen = select_series(folder, series, non_image, self.series_uid, self.series_index)
        if chosen.multi_frame:
            if chosen.num_slices == 1:
                return read_dicom(chosen.files[0], **self._options())
            raise DicomReadError(
                f"{folder!r}: series #{chosen.index} has {chosen.num_slices} multi-frame files; read them one by one."
            )
        files, positions = sort_series_files(chosen.files)
        slices, metas = [], []
        for f in files:
            arr, meta = read_dicom(f, **self._options())
            if slices and arr.shape != slices[0].shape:
                raise DicomReadError(
                    f"{f!r}: shape {arr.shape} differs from {slices[0].shape} of the other slices of the series."
                )
            slices.append(arr)
            metas.append(meta)
        volume = np.stack(slices, axis=0)
        meta = dict(metas[0])
        colour = meta["original_channel_dim"] == -1
        meta["spatial_shape"] = np.asarray(volume.shape[:-1] if colour else volume.shape)
        meta["rd_num_slices"] = len(files)
        first = _dcmread(files[0], stop_before_pixels=True)
        direction = _direction(first)
        if positions is not None and direction is not None:
            row_cos, col_cos = direction
            normal = np.cross(row_cos, col_cos)
            step = (
                float(np.mean(np.diff(positions)))
                if len(positions) > 1
                else float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
            )
            dr, dc = _spacing(first)
            origin = np.asarray([float(x) for x in first.ImagePositionPatient])
            meta["affine"] = _affine(origin, row_cos, col_cos, dr, dc, normal * step, True)
            meta["rd_slice_spacing"] = step
        else:
            dr, dc = _spacing(first)
            meta["affine"] = np.diag([1.0, dr, dc, 1.0])
        meta["original_affine"] = meta["affine"].copy()
        return volume, meta

    def read_file(self, name: str) -> tuple[np.ndarray, dict]:
        arr, meta = self.read_series(name) if os.path.isdir(name) else read_dicom(name, **self._options())
        return arr, filter_meta(meta, self.allowed_tags, prefix="rd_")  # belt and braces: only the allow-list

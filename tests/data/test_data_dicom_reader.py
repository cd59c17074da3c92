"""DicomReader on the real files pydicom ships, and on series folders built from them."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from monai_rd.data import DicomReader, DicomReadError, find_dicom_series, read_dicom

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def td(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped in this pydicom wheel")
    return path


def load(path, **reader_args):
    from monai.transforms import LoadImage

    return LoadImage(reader=DicomReader(**reader_args), image_only=True, ensure_channel_first=True)(path)


# ------------------------------------------------------------------------------------------- values


def test_ct_small_hounsfield_units_match_raw_times_slope_plus_intercept():
    ds = pydicom.dcmread(td("CT_small.dcm"))
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    img = load(td("CT_small.dcm"))
    assert tuple(img.shape) == (1, 128, 128)
    np.testing.assert_array_equal(img[0].numpy().astype(np.float64), expected)
    assert float(ds.RescaleIntercept) == -1024.0  # so the test really exercises the intercept
    lo, hi = float(img.min()), float(img.max())
    assert -1024 <= lo < -500 and 500 < hi <= 3071, (lo, hi)  # air-ish to bone in HU, not raw stored values
    assert img.meta["Modality"] == "CT"


def test_mr_small_rows_are_rows_unlike_pydicomreader():
    from monai.data import PydicomReader
    from monai.transforms import LoadImage

    raw = pydicom.dcmread(td("MR_small.dcm")).pixel_array.astype(np.float32)
    img = load(td("MR_small.dcm"))
    np.testing.assert_array_equal(img[0].numpy(), raw)
    monai_img = LoadImage(reader=PydicomReader(), image_only=True)(td("MR_small.dcm"))
    np.testing.assert_array_equal(np.asarray(monai_img), raw.T)  # MONAI's transposed layout: the pitfall
    assert not np.array_equal(raw, raw.T)


def test_monochrome1_inverted_like_simpleitk():
    import SimpleITK as sitk

    path = td(os.path.join("dicomdirtests", "77654033", "CR1", "6154"))
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    ours = read_dicom(path)[0]
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(path))[0]
    np.testing.assert_allclose(ours, gdcm, atol=1e-3)
    rescaled = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    not_inverted = read_dicom(path, invert_monochrome1=False)[0]
    np.testing.assert_allclose(not_inverted, rescaled, atol=1e-3)
    assert np.corrcoef(ours.ravel(), rescaled.ravel())[0, 1] < -0.999


def test_voi_window_dicom_linear_formula_on_cr():
    path = td(os.path.join("dicomdirtests", "77654033", "CR1", "6154"))
    ds = pydicom.dcmread(path)
    x = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    # DICOM PS3.3 C.11.2.1.2.1, output range [0, 1], then MONOCHROME1 inverted
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    y = np.where(x <= lo, 0.0, np.where(x > hi, 1.0, (x - (c - 0.5)) / (w - 1) + 0.5))
    np.testing.assert_allclose(read_dicom(path, voi=True)[0], 1.0 - y, atol=1e-6)
    np.testing.assert_allclose(read_dicom(path, voi=True, invert_monochrome1=False)[0], y, atol=1e-6)
    # a user window overrides the file's
    y2 = np.clip((x - (1000 - 0.5)) / (400 - 1) + 0.5, 0, 1)
    user = read_dicom(path, voi=True, window=(1000, 400), invert_monochrome1=False)[0]
    np.testing.assert_allclose(user, y2, atol=1e-6)


def test_voi_without_window_is_a_named_error():
    with pytest.raises(DicomReadError, match="CT_small.dcm.*WindowCenter"):
        read_dicom(td("CT_small.dcm"), voi=True)


def test_multiframe_ybr_ultrasound_axis_order_and_colour():
    from pydicom.pixels import convert_color_space, pixel_array

    path = td("examples_ybr_color.dcm")
    ds = pydicom.dcmread(path)
    ybr = pixel_array(ds, as_rgb=False)
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and ybr.shape == (30, 240, 320, 3)
    img = load(path)
    assert tuple(img.shape) == (3, 30, 240, 320)  # [C, F, H, W]
    expected = convert_color_space(ybr, "YBR_FULL", "RGB").astype(np.float32)
    np.testing.assert_array_equal(np.moveaxis(img.numpy(), 0, -1), expected)
    for k in (0, 17, 29):  # frame k is the k-th frame decoded on its own
        np.testing.assert_array_equal(
            img[:, k].numpy(),
            np.moveaxis(convert_color_space(pixel_array(ds, index=k, as_rgb=False), "YBR_FULL", "RGB"), -1, 0),
        )
    assert not np.array_equal(img[:, 0].numpy(), img[:, 29].numpy())


def test_ybr_jpeg_close_to_the_same_picture_stored_rgb():
    reference = read_dicom(td("SC_rgb_rle.dcm"))[0]  # RGB, lossless
    np.testing.assert_array_equal(reference[0, 0], [255, 0, 0])  # the red bar of the test pattern
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "SC_ybr_full_422_uncompressed.dcm"):
        image, meta = read_dicom(td(name))
        assert pydicom.dcmread(td(name)).PhotometricInterpretation.startswith("YBR")
        assert "ybr_to_rgb" in meta["rd_steps"]
        diff = np.abs(image - reference)
        assert diff.max() <= 8 and diff.mean() < 1.0, (name, diff.max(), diff.mean())


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"])
def test_lossless_compressed_mr_equals_uncompressed(name):
    assert pydicom.dcmread(td(name)).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(read_dicom(td(name))[0], read_dicom(td("MR_small.dcm"))[0])


def test_jpeg_lossless_process14_equals_rle():
    assert pydicom.dcmread(td("SC_rgb_jpeg_gdcm.dcm")).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    np.testing.assert_array_equal(read_dicom(td("SC_rgb_jpeg_gdcm.dcm"))[0], read_dicom(td("SC_rgb_rle.dcm"))[0])


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "JPEGLSNearLossless_16.dcm", "JPGExtended.dcm"])
def test_lossy_syntaxes_agree_with_gdcm(name):
    import SimpleITK as sitk

    ours = read_dicom(td(name))[0]
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(td(name))).astype(np.float32).reshape(ours.shape)
    assert np.abs(ours - gdcm).max() <= 1.0


def test_twelve_bit_jpeg_that_pylibjpeg_rejects_decodes_through_gdcm_fallback():
    # JPEG-lossy.dcm and JPGExtended.dcm hold the same picture; only the first has a scan header libjpeg refuses
    fallback = read_dicom(td("JPEG-lossy.dcm"))[0]
    reference = read_dicom(td("JPGExtended.dcm"))[0]
    assert np.abs(fallback - reference).max() <= 1.0
    with pytest.raises(DicomReadError, match="JPEG-lossy.dcm.*cannot be decoded"):
        read_dicom(td("JPEG-lossy.dcm"), sitk_fallback=False)


# ------------------------------------------------------------------------------------------- failures


def test_truncated_file_is_named():
    with pytest.raises(DicomReadError, match=r"MR_truncated\.dcm.*truncated.*8130 bytes, 8192 expected"):
        load(td("MR_truncated.dcm"))


@pytest.mark.parametrize("name,what", [("rtplan.dcm", "RTPLAN"), ("test-SR.dcm", "SR")])
def test_no_pixel_data_is_named(name, what):
    with pytest.raises(DicomReadError, match=rf"{name}.*no pixel data.*modality {what}"):
        read_dicom(td(name))


def test_non_dicom_file_is_named(tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_text("not an image")
    with pytest.raises(DicomReadError, match=r"notes\.dcm.*is not a DICOM file"):
        read_dicom(bad)
    with pytest.raises(DicomReadError, match=r"missing\.dcm.*no such file"):
        read_dicom(tmp_path / "missing.dcm")


def test_verify_suffix_sniffs_the_dicm_marker(tmp_path):
    reader = DicomReader()
    assert reader.verify_suffix(td(os.path.join("dicomdirtests", "77654033", "CR1", "6154")))  # no suffix
    assert reader.verify_suffix(str(tmp_path))
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG")
    assert not reader.verify_suffix(str(png))


# ------------------------------------------------------------------------------------------- series folders


def _write_series(folder, source, n, uid, z0=0.0, dz=5.0, order=None, offset=True, drop_position=False):
    """``n`` copies of a real file as one series: slice k at z0 + k*dz, pixel values raised by 10*k."""
    os.makedirs(folder, exist_ok=True)
    order = order or list(range(n))
    for name_index, k in enumerate(order):
        ds = pydicom.dcmread(source)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        if drop_position:
            del ds.ImagePositionPatient
        else:
            x, y, _ = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z0 + k * dz]
        if offset:
            arr = ds.pixel_array.astype(np.int32) + 10 * k
            ds.PixelData = arr.astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(os.path.join(folder, f"IM{name_index:04d}"))


@pytest.fixture
def two_series(tmp_path):
    folder = str(tmp_path / "study")
    ct_uid, mr_uid = generate_uid(), generate_uid()
    _write_series(folder, td("CT_small.dcm"), 3, ct_uid, order=[2, 0, 1])  # file names not in slice order
    for i in range(2):
        ds = pydicom.dcmread(td("MR_small.dcm"))
        ds.SeriesInstanceUID = mr_uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.save_as(os.path.join(folder, f"MR{i}"))
    shutil.copy(td("rtplan.dcm"), os.path.join(folder, "plan"))  # no pixels: listed, never stacked
    return folder, ct_uid, mr_uid


def test_folder_of_several_series_lists_them_without_patient_data(two_series):
    folder, ct_uid, mr_uid = two_series
    with pytest.raises(DicomReadError) as err:
        load(folder)
    msg = str(err.value)
    assert "2 series" in msg and "never stacked" in msg
    assert "modality=CT" in msg and "modality=MR" in msg and "files=3" in msg and "files=2" in msg
    assert ct_uid in msg and mr_uid in msg
    for phi in ("CompressedSamples", "1CT1", "4MR1"):
        assert phi not in msg
    series, non_image = find_dicom_series(folder)
    assert [s.modality for s in series] == ["CT", "MR"] and len(non_image) == 1


def test_series_picked_by_uid_is_sorted_along_the_normal(two_series):
    folder, ct_uid, _ = two_series
    img = load(folder, series_uid=ct_uid)
    assert tuple(img.shape) == (1, 3, 128, 128)
    hu = pydicom.dcmread(td("CT_small.dcm")).pixel_array.astype(np.float64) - 1024.0
    for k in range(3):  # slice k (z = 5k) carries +10k
        np.testing.assert_array_equal(img[0, k].numpy(), hu + 10 * k)
    # the affine maps index (k, 0, 0) to ImagePositionPatient of slice k (LPS -> RAS: x, y negated)
    x, y, _ = (float(v) for v in pydicom.dcmread(td("CT_small.dcm")).ImagePositionPatient)
    for k in range(3):
        world = img.affine.numpy() @ np.array([k, 0, 0, 1.0])
        np.testing.assert_allclose(world[:3], [-x, -y, 5.0 * k], atol=1e-4)
    # one step along a row (column index) moves PixelSpacing[1] along +x (LPS) = -x (RAS)
    step = img.affine.numpy() @ np.array([0, 0, 1, 1.0]) - img.affine.numpy() @ np.array([0, 0, 0, 1.0])
    np.testing.assert_allclose(step[:3], [-0.661468, 0, 0], atol=1e-6)


def test_series_picked_by_index(two_series):
    folder, _, _ = two_series
    img = load(folder, series_index=1)
    assert tuple(img.shape) == (1, 2, 64, 64) and img.meta["Modality"] == "MR"
    with pytest.raises(DicomReadError, match="index 5 out of range"):
        load(folder, series_index=5)
    with pytest.raises(DicomReadError, match="no series with SeriesInstanceUID '1.2.3'"):
        load(folder, series_uid="1.2.3")


def test_single_series_folder_and_instance_number_fallback(tmp_path):
    folder = str(tmp_path / "s")
    _write_series(folder, td("CT_small.dcm"), 4, generate_uid(), order=[3, 1, 0, 2], drop_position=True)
    img = load(folder)
    hu = pydicom.dcmread(td("CT_small.dcm")).pixel_array.astype(np.float64) - 1024.0
    for k in range(4):
        np.testing.assert_array_equal(img[0, k].numpy(), hu + 10 * k)


def test_descending_positions_are_sorted_ascending(tmp_path):
    folder = str(tmp_path / "s")
    _write_series(folder, td("CT_small.dcm"), 3, generate_uid(), z0=100.0, dz=-2.5)
    img = load(folder)
    hu = pydicom.dcmread(td("CT_small.dcm")).pixel_array.astype(np.float64) - 1024.0
    np.testing.assert_array_equal(img[0, 0].numpy(), hu + 20)  # z = 95 first
    assert img.meta["rd_slice_spacing"] == pytest.approx(2.5)


def test_two_slices_at_one_position_are_refused(tmp_path):
    folder = str(tmp_path / "s")
    _write_series(folder, td("CT_small.dcm"), 2, generate_uid(), dz=0.0)
    with pytest.raises(DicomReadError, match="same slice position"):
        load(folder)


def test_non_dicom_file_in_a_series_folder_is_named(tmp_path):
    folder = str(tmp_path / "s")
    _write_series(folder, td("CT_small.dcm"), 2, generate_uid())
    (tmp_path / "s" / "readme.txt").write_text("export notes")
    with pytest.raises(DicomReadError, match=r"readme\.txt.*is not a DICOM file"):
        load(folder)

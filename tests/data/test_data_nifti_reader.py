"""NiftiReader on nibabel's own test files, values checked against direct nibabel reads."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from monai_rd.data import NiftiReader, NiftiReadError, read_nifti

DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
ANATOMICAL = os.path.join(DATA, "anatomical.nii")
EXAMPLE4D = os.path.join(DATA, "example4d.nii.gz")


def load(path, **reader_args):
    from monai.transforms import LoadImage

    return LoadImage(reader=NiftiReader(**reader_args), image_only=True, ensure_channel_first=True)(path)


def test_files_are_not_canonical_to_start_with():
    assert nib.aff2axcodes(nib.load(ANATOMICAL).affine) == ("L", "A", "S")
    assert nib.aff2axcodes(nib.load(EXAMPLE4D).affine) == ("L", "A", "S")


def test_3d_volume_made_canonical():
    canonical = nib.as_closest_canonical(nib.load(ANATOMICAL))
    img = load(ANATOMICAL)
    assert tuple(img.shape) == (1, 33, 41, 25)
    np.testing.assert_array_equal(img[0].numpy(), canonical.get_fdata().astype(np.float32))
    np.testing.assert_allclose(img.affine.numpy(), canonical.affine)
    # independent of as_closest_canonical: LAS -> RAS flips the first axis of the stored array
    raw = np.asarray(nib.load(ANATOMICAL).dataobj).astype(np.float32)
    np.testing.assert_array_equal(img[0].numpy(), raw[::-1])


def test_axial_display_slices_radiological_orientation():
    raw = np.asarray(nib.load(ANATOMICAL).dataobj).astype(np.float32)  # stored LAS: i grows towards the left
    data, meta = read_nifti(ANATOMICAL, slice_axis="axial")
    assert data.shape == (25, 41, 33)
    # slice s, row h, column w = stored voxel (i=w [L-ward => column 0 is the patient's right], j=ny-1-h, k=s)
    np.testing.assert_array_equal(data, raw[:, ::-1, :].transpose(2, 1, 0))
    assert meta["rd_axcodes"] == "SPL"  # slices inferior->superior, rows towards posterior, columns towards left
    # the affine keeps world coordinates: voxel (s, h, w) and the stored voxel it came from coincide
    stored_affine = nib.load(ANATOMICAL).affine
    for s, h, w in [(0, 0, 0), (12, 5, 30), (24, 40, 1)]:
        np.testing.assert_allclose(meta["affine"] @ [s, h, w, 1], stored_affine @ [w, 40 - h, s, 1])


@pytest.mark.parametrize("plane,codes", [("coronal", "AIL"), ("sagittal", "RIP"), (1, "AIL"), (0, "RIP")])
def test_other_planes(plane, codes):
    canonical = nib.as_closest_canonical(nib.load(ANATOMICAL))
    c = canonical.get_fdata()
    data, meta = read_nifti(ANATOMICAL, slice_axis=plane)
    assert meta["rd_axcodes"] == codes
    if codes == "AIL":
        np.testing.assert_array_equal(data, c.transpose(1, 2, 0)[:, ::-1, ::-1])
    else:
        np.testing.assert_array_equal(data, c.transpose(0, 2, 1)[:, ::-1, ::-1])
    ijk = np.array([3, 4, 5, 1])
    world = meta["affine"] @ ijk
    voxel = np.linalg.solve(canonical.affine, world)
    assert data[3, 4, 5] == pytest.approx(c[tuple(np.rint(voxel[:3]).astype(int))])


def test_4d_series_time_is_the_channel_axis():
    canonical = nib.as_closest_canonical(nib.load(EXAMPLE4D)).get_fdata()
    img = load(EXAMPLE4D)
    assert tuple(img.shape) == (2, 128, 96, 24)
    np.testing.assert_array_equal(np.moveaxis(img.numpy(), 0, -1), canonical.astype(np.float32))
    one = load(EXAMPLE4D, volume_index=1, slice_axis="axial")
    assert tuple(one.shape) == (1, 24, 96, 128)
    np.testing.assert_array_equal(one[0].numpy(), canonical[..., 1].transpose(2, 1, 0)[:, ::-1, ::-1])
    with pytest.raises(NiftiReadError, match=r"example4d\.nii\.gz' has 2 volumes; volume_index=2"):
        read_nifti(EXAMPLE4D, volume_index=2)


def test_bad_inputs_are_named(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(NiftiReadError, match="broken.nii.gz"):
        load(str(bad))
    two_d = tmp_path / "flat.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 5), np.float32), np.eye(4)), two_d)
    with pytest.raises(NiftiReadError, match=r"flat\.nii' has shape \(4, 5\)"):
        read_nifti(two_d)
    with pytest.raises(ValueError, match="slice_axis must be one of"):
        NiftiReader(slice_axis="transverse")

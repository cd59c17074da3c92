"""NaturalImageReader: values and the [C, H, W] rows-first orientation, on files written with PIL."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_rd.data import ImageReadError, NaturalImageReader

H, W = 5, 7  # not square, so a transposition changes the shape


def load(path, **kw):
    from monai.transforms import LoadImage

    return LoadImage(reader=NaturalImageReader(**kw), image_only=True, ensure_channel_first=True)(str(path))


def ramp(dtype=np.uint8, scale=1):
    return (np.arange(H * W).reshape(H, W) * scale).astype(dtype)


def test_grey_8bit_rows_are_rows(tmp_path):
    pixels = ramp()
    Image.fromarray(pixels, mode="L").save(tmp_path / "g.png")
    img = load(tmp_path / "g.png")
    assert tuple(img.shape) == (1, H, W)
    np.testing.assert_array_equal(img[0].numpy(), pixels)
    assert img[0, 0, W - 1] == W - 1 and img[0, H - 1, 0] == (H - 1) * W  # top-right, bottom-left


def test_monai_pilreader_default_is_transposed(tmp_path):
    from monai.data import PILReader
    from monai.transforms import LoadImage

    pixels = ramp()
    Image.fromarray(pixels, mode="L").save(tmp_path / "g.png")
    monai_img = LoadImage(reader=PILReader(), image_only=True)(str(tmp_path / "g.png"))
    assert tuple(monai_img.shape) == (W, H)  # the pitfall this reader avoids
    np.testing.assert_array_equal(np.asarray(monai_img), pixels.T)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_grey_16bit(tmp_path, suffix):
    pixels = ramp(np.uint16, scale=1800)  # up to 61200 > 255
    Image.fromarray(pixels).save(tmp_path / f"g16{suffix}")
    with Image.open(tmp_path / f"g16{suffix}") as im:
        assert im.mode.startswith("I;16")
    img = load(tmp_path / f"g16{suffix}")
    assert tuple(img.shape) == (1, H, W)
    np.testing.assert_array_equal(img[0].numpy(), pixels.astype(np.float32))
    assert float(img.max()) == 61200.0


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_rgb_channels_first(tmp_path, suffix):
    rgb = np.stack([ramp(), 255 - ramp(), np.full((H, W), 7, np.uint8)], axis=-1)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / f"c{suffix}")
    img = load(tmp_path / f"c{suffix}")
    assert tuple(img.shape) == (3, H, W)
    np.testing.assert_array_equal(img.numpy(), rgb.transpose(2, 0, 1))


def test_rgba_keeps_alpha(tmp_path):
    rgba = np.stack([ramp(), ramp() + 1, ramp() + 2, 255 - ramp()], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    img = load(tmp_path / "a.png")
    assert tuple(img.shape) == (4, H, W)
    np.testing.assert_array_equal(img.numpy(), rgba.transpose(2, 0, 1))


def test_jpeg_close_to_written_and_palette_becomes_rgb(tmp_path):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:8] = (200, 30, 30)  # top half red, bottom half blue
    rgb[8:] = (30, 30, 200)
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    img = load(tmp_path / "c.jpg")
    assert tuple(img.shape) == (3, 16, 24)
    assert np.abs(img.numpy() - rgb.transpose(2, 0, 1)).mean() < 8  # lossy, chroma subsampled at the edge
    assert img[0, :6].mean() > 180 and img[2, :6].mean() < 50  # top rows red
    assert img[2, 10:].mean() > 180 and img[0, 10:].mean() < 50  # bottom rows blue
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    pal = load(tmp_path / "p.png")
    assert tuple(pal.shape) == (3, 16, 24)
    assert np.abs(pal.numpy() - rgb.transpose(2, 0, 1)).max() <= 8


def test_exif_orientation_applied(tmp_path):
    from PIL import ImageOps

    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[0, :] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", exif=exif, quality=100)
    img = load(tmp_path / "photo.jpg")
    assert tuple(img.shape) == (3, W, H)
    with Image.open(tmp_path / "photo.jpg") as im:
        expected = np.asarray(ImageOps.exif_transpose(im)).transpose(2, 0, 1)
    np.testing.assert_array_equal(img.numpy(), expected)
    assert tuple(load(tmp_path / "photo.jpg", exif_transpose=False).shape) == (3, H, W)


def test_bad_files_are_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        load(tmp_path / "broken.png")
    frames = [Image.fromarray(ramp()) for _ in range(2)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match=r"stack\.tif' holds 2 pages"):
        load(tmp_path / "stack.tif")

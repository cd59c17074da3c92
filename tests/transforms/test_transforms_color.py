"""EnsureRGB / EnsureRGBd."""

import pytest
import torch
from monai.data import MetaTensor

from monai_rd.transforms import EnsureRGB, EnsureRGBd


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_channel_counts(channels):
    img = torch.arange(channels * 6, dtype=torch.float32).reshape(channels, 2, 3)
    out = EnsureRGB()(img)
    assert out.shape == (3, 2, 3)
    if channels in (1, 2):
        assert all(torch.equal(out[c], img[0]) for c in range(3))
    else:
        assert torch.equal(out, img[:3])


def test_bad_channels_name_the_file():
    img = MetaTensor(torch.zeros(5, 2, 2), meta={"filename_or_obj": "/data/odd.tif"})
    with pytest.raises(ValueError, match="odd.tif"):
        EnsureRGBd(keys="image")({"image": img})

"""BiomedCLIP teacher: the visual trunk of ``open_clip_pytorch_model.bin`` in timm's vit_base_patch16_224.

The file is fabricated from open_clip's own ``TimmModel`` configured as BiomedCLIP's ``vision_cfg``
(``timm_model_name=vit_base_patch16_224, timm_pool='', timm_proj='linear', embed_dim=512``) and saved with
the ``visual.`` prefix next to text-tower keys, as the whole CLIP state dict is.
"""

from __future__ import annotations

import pytest
import torch

from monai_rd.networks import WeightsMismatchError, build_teacher

timm_model = pytest.importorskip("open_clip.timm_model")


@pytest.fixture(scope="module")
def visual_and_file(tmp_path_factory):
    torch.manual_seed(0)
    visual = timm_model.TimmModel("vit_base_patch16_224", embed_dim=512, image_size=224, pool="", proj="linear").eval()
    state = {f"visual.{k}": v for k, v in visual.state_dict().items()}
    assert "visual.trunk.cls_token" in state and "visual.head.proj.weight" in state
    state["text.transformer.embeddings.word_embeddings.weight"] = torch.randn(16, 8)
    state["text.proj.0.weight"] = torch.randn(8, 8)
    state["logit_scale"] = torch.tensor(4.6)
    path = tmp_path_factory.mktemp("bmc") / "open_clip_pytorch_model.bin"
    torch.save(state, path)
    return visual, path


@pytest.mark.slow
def test_equals_open_clip_trunk(visual_and_file):
    visual, path = visual_and_file
    t = build_teacher("biomedclip_vit_b", weights=path)
    assert t.feature_dim == 768 and t.input_size == 224
    torch.testing.assert_close(t.mean.flatten(), torch.tensor([0.48145466, 0.4578275, 0.40821073]))
    x = torch.rand(1, 3, 96, 96)  # resized to 224 by the teacher
    xr = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = visual.trunk((xr - t.mean) / t.std)
    assert visual(((xr - t.mean) / t.std)).shape[-1] == 512  # open_clip's projected embedding, not what we distil
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)
    maps = build_teacher("biomedclip_vit_b", weights=path, pooled=False)
    assert maps.feature_shape == (768, 14, 14)


def test_text_only_file_is_refused(tmp_path):
    torch.save({"text.proj.0.weight": torch.zeros(2, 2)}, tmp_path / "x.bin")
    with pytest.raises(WeightsMismatchError, match=r"open_clip_pytorch_model\.bin"):
        build_teacher("biomedclip_vit_b", weights=tmp_path / "x.bin", input_size=32)

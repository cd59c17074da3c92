"""LVM-Med teachers: ``lvmmed_resnet.torch`` (torchvision ResNet-50) and ``lvmmed_vit.pth`` (SAM ViT-B encoder).

The ViT file is fabricated from segment_anything's own ``ImageEncoderViT`` (the architecture LVM-Med saves),
reduced in depth and image size for speed; key names (``mlp.lin1``, ``attn.rel_pos_h``, ``neck.*``) are the
real ones.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn as nn
import torchvision

from monai_rd.networks import WeightsMismatchError, build_teacher

SIZE = 64


def test_lvmmed_resnet50(tmp_path):
    torch.manual_seed(0)
    src = torchvision.models.resnet50(weights=None).double().eval()
    with torch.no_grad():
        for m in src.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.uniform_(-0.1, 0.1)
    torch.save(src.state_dict(), tmp_path / "lvmmed_resnet.torch")  # with its fc, as released
    t = build_teacher("lvmmed_resnet50", weights=tmp_path / "lvmmed_resnet.torch", input_size=SIZE).double()
    assert t.feature_dim == 2048
    x = torch.rand(2, 3, SIZE, SIZE, dtype=torch.float64)
    src.fc = nn.Identity()
    with torch.no_grad():
        expected = src((x - t.mean) / t.std)
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(t.mean.flatten(), torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64))
    maps = build_teacher("lvmmed_resnet50", weights=tmp_path / "lvmmed_resnet.torch", input_size=SIZE, pooled=False)
    assert maps.feature_shape == (2048, 2, 2)


sam = pytest.importorskip("segment_anything.modeling")
VIT = dict(img_size=SIZE, depth=4, global_attn_indexes=(1, 3), window_size=2)


@pytest.fixture(scope="module")
def sam_encoder():
    torch.manual_seed(0)
    enc = sam.ImageEncoderViT(
        img_size=VIT["img_size"],
        patch_size=16,
        embed_dim=768,
        depth=VIT["depth"],
        num_heads=12,
        mlp_ratio=4,
        out_chans=256,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_abs_pos=False,
        use_rel_pos=True,
        rel_pos_zero_init=False,
        window_size=VIT["window_size"],
        global_attn_indexes=VIT["global_attn_indexes"],
    )
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if "rel_pos" in name or "norm" in name:
                p.normal_(0, 0.5) if "rel_pos" in name else p.uniform_(0.5, 1.5)
    return enc.eval()


@pytest.fixture(scope="module")
def vit_file(sam_encoder, tmp_path_factory):
    path = tmp_path_factory.mktemp("lvm") / "lvmmed_vit.pth"
    state = sam_encoder.state_dict()
    assert "blocks.0.mlp.lin1.weight" in state and "neck.0.weight" in state and "pos_embed" not in state
    torch.save(state, path)
    return path


def _sam_blocks(enc, x):
    with torch.no_grad():
        h = enc.patch_embed(x)
        for blk in enc.blocks:
            h = blk(h)
    return h  # [B, h, w, 768]


@pytest.mark.parametrize("input_size", [SIZE, 32], ids=["native", "resized_rel_pos_interpolated"])
def test_lvmmed_vit_equals_sam_encoder(sam_encoder, vit_file, input_size):
    t = build_teacher("lvmmed_vit_b", weights=vit_file, input_size=input_size, **VIT)
    assert t.feature_dim == 768
    x = torch.rand(2, 3, input_size, input_size)
    expected = _sam_blocks(sam_encoder, (x - t.mean) / t.std)
    torch.testing.assert_close(t(x), expected.mean(dim=(1, 2)), atol=1e-5, rtol=1e-5)
    maps = build_teacher("lvmmed_vit_b", weights=vit_file, input_size=input_size, pooled=False, **VIT)
    assert maps.feature_shape == (768, input_size // 16, input_size // 16)
    torch.testing.assert_close(maps(x), expected.permute(0, 3, 1, 2), atol=1e-5, rtol=1e-5)


def test_whole_sam_checkpoint_prefix(sam_encoder, tmp_path):
    state = {f"image_encoder.{k}": v for k, v in sam_encoder.state_dict().items()}
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 256)
    torch.save(state, tmp_path / "sam.pth")
    t = build_teacher("lvmmed_vit_b", weights=tmp_path / "sam.pth", input_size=SIZE, **VIT)
    x = torch.rand(1, 3, SIZE, SIZE)
    expected = _sam_blocks(sam_encoder, (x - t.mean) / t.std).mean(dim=(1, 2))
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)


def test_vit_mismatch(vit_file):
    with pytest.raises(WeightsMismatchError, match=r"lvmmed_vit\.pth") as e:
        build_teacher(
            "lvmmed_vit_b",
            weights=vit_file,
            input_size=SIZE,
            img_size=SIZE,
            depth=5,
            global_attn_indexes=(1, 3),
            window_size=2,
        )
    assert "blocks.4.attn.qkv.weight" in str(e.value)


def test_real_vit_b_layout_matches_timm_after_renaming():
    """At the real size (1024 px, 12 blocks) SAM's ViT-B keys, renamed, are exactly the timm model's keys."""
    import timm

    from monai_rd.networks.zoo.lvm_med import sam_to_timm

    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        enc = sam.ImageEncoderViT(
            img_size=1024,
            depth=12,
            embed_dim=768,
            num_heads=12,
            use_abs_pos=False,
            use_rel_pos=True,
            window_size=14,
            global_attn_indexes=(2, 5, 8, 11),
            out_chans=256,
            qkv_bias=True,
        )
        ours = timm.create_model("samvit_base_patch16", pretrained=False, num_classes=0, use_abs_pos=False)
    theirs = {k: tuple(v.shape) for k, v in sam_to_timm(enc.state_dict()).items()}
    assert theirs == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert theirs["blocks.2.attn.rel_pos_h"] == (127, 64) and theirs["blocks.0.attn.rel_pos_h"] == (27, 64)

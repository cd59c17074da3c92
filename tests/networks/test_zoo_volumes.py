"""3D teachers load the authors' files strictly and reproduce the source architecture's outputs; the slice-wise
teacher equals a hand loop over slices of the 2D teacher."""

from __future__ import annotations

import pytest
import torch

from monai_rd.networks import WeightsMismatchError, build_teacher
from monai_rd.networks.nets.volume_teachers import SliceWiseTeacher
from tests.helpers.volume_sources import GenesisUNet3D, TencentResNet3D, randomize, save_data_parallel, save_swinvit


def _volume(b=2, side=32, seed=1):
    return torch.rand(b, 1, side, side, side, generator=torch.Generator().manual_seed(seed))


def _zscore_nonzero_reference(x):
    out = x.clone().double()
    for b in range(x.shape[0]):
        v = x[b, 0].double()
        fg = v[v != 0]
        out[b, 0] = (v - fg.mean()) / fg.std()
    return out.float()


@pytest.mark.parametrize("depth", [10, 18])
def test_medicalnet_round_trip(tmp_path, depth):
    torch.manual_seed(depth)
    source = randomize(TencentResNet3D(depth), seed=depth)
    path = tmp_path / f"resnet_{depth}_23dataset.pth"
    save_data_parallel(source, path)
    x = _volume()
    x[0, 0, :4] = 0  # background voxels are left out of the z-score
    teacher = build_teacher(f"medicalnet_resnet{depth}", weights=str(path))
    with torch.no_grad():
        expected = source(_zscore_nonzero_reference(x)).mean(dim=(2, 3, 4))
    assert teacher.feature_shape == (512,)
    torch.testing.assert_close(teacher(x), expected, rtol=1e-4, atol=1e-5)
    maps = build_teacher(f"medicalnet_resnet{depth}", weights=str(path), pooled=False)
    assert maps.feature_shape == (512, 4, 4, 4)  # stride 8: layer3/layer4 dilated, not strided


def test_medicalnet_rejects_wrong_depth_file(tmp_path):
    path = tmp_path / "resnet_10_23dataset.pth"
    save_data_parallel(TencentResNet3D(10), path)
    with pytest.raises(WeightsMismatchError, match="resnet_18_23dataset.pth"):
        build_teacher("medicalnet_resnet18", weights=str(path))


def test_models_genesis_round_trip(tmp_path):
    torch.manual_seed(0)
    source = randomize(GenesisUNet3D())
    path = tmp_path / "Genesis_Chest_CT.pt"
    save_data_parallel(source, path)
    teacher = build_teacher("models_genesis", weights=str(path), input_size=32)
    x = _volume(b=3, seed=2)
    with torch.no_grad():  # the source normalises with batch statistics: one volume at a time
        expected = torch.cat([source.encode(x[i : i + 1]).mean(dim=(2, 3, 4)) for i in range(3)])
    running = {k: v.clone() for k, v in teacher.state_dict().items() if "running" in k}
    assert teacher.feature_shape == (512,)
    torch.testing.assert_close(teacher(x), expected, rtol=1e-4, atol=1e-5)
    # a volume's features do not depend on its batch-mates, and the stored statistics are never updated
    torch.testing.assert_close(teacher(x[1:2]), expected[1:2], rtol=1e-4, atol=1e-5)
    for k, v in teacher.state_dict().items():
        if "running" in k:
            assert torch.equal(v, running[k])


def test_models_genesis_rejects_missing_encoder_key(tmp_path):
    source = GenesisUNet3D()
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.startswith("down_tr512.ops.1")}
    path = tmp_path / "Genesis_Chest_CT.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsMismatchError, match="down_tr512.ops.1"):
        build_teacher("models_genesis", weights=str(path), input_size=32)


@pytest.mark.slow
def test_swin_unetr_ssl_round_trip(tmp_path):
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(0)
    swin = SwinUNETR(in_channels=1, out_channels=1, feature_size=48).swinViT.eval()
    with torch.no_grad():
        for p in swin.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = tmp_path / "model_swinvit.pt"
    save_swinvit(swin, path)
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert "module.layers1.0.blocks.0.mlp.fc1.weight" in saved and "module.patch_embed.proj.weight" in saved
    teacher = build_teacher("swin_unetr_ssl", weights=str(path), input_size=32)
    x = _volume(b=2, seed=3)
    with torch.no_grad():
        expected = swin(x, normalize=True)[-1].mean(dim=(2, 3, 4))
    assert teacher.feature_shape == (768,)
    torch.testing.assert_close(teacher(x), expected, rtol=1e-4, atol=1e-5)


def test_swin_unetr_ssl_rejects_a_unetr_file(tmp_path):
    torch.save({"state_dict": {"module.vit.patch_embedding.position_embeddings": torch.zeros(1)}}, tmp_path / "x.pt")
    with pytest.raises(WeightsMismatchError, match="model_swinvit.pt"):
        build_teacher("swin_unetr_ssl", weights=str(tmp_path / "x.pt"), input_size=32)


@pytest.mark.parametrize("pool", ["mean", "max"])
@pytest.mark.parametrize("axis", [2, 4])
def test_slicewise_equals_hand_loop(pool, axis):
    torch.manual_seed(0)
    inner = build_teacher("torchvision:resnet18", input_size=32)
    teacher = SliceWiseTeacher(inner, axis=axis, pool=pool, slice_batch=5)  # 5 does not divide B*S: ragged last call
    x = torch.rand(2, 1, 6, 8, 10)
    with torch.no_grad():
        per_sample = []
        for b in range(2):
            feats = []
            for s in range(x.shape[axis]):
                sl = x[b : b + 1].select(axis, s)  # [1, 1, h, w]
                feats.append(inner(sl)[0])
            f = torch.stack(feats)
            per_sample.append(f.mean(0) if pool == "mean" else f.amax(0))
        expected = torch.stack(per_sample)
    torch.testing.assert_close(teacher(x), expected, rtol=1e-5, atol=1e-5)
    assert teacher.feature_shape == (512,) and not any(p.requires_grad for p in teacher.parameters())


def test_slicewise_sequence_and_registry_name():
    teacher = build_teacher("slicewise:torchvision:resnet18", input_size=32, pool="none", num_slices=6)
    x = torch.rand(2, 1, 6, 16, 16)
    out = teacher(x)
    assert out.shape == (2, 6, 512) and teacher.feature_shape == (6, 512)
    torch.testing.assert_close(out[:, 2], teacher.teacher(x[:, :, 2]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="num_slices"):
        teacher(torch.rand(1, 1, 5, 16, 16))
    with pytest.raises(ValueError, match="num_slices"):
        build_teacher("slicewise:torchvision:resnet18", pool="none")


def test_slicewise_takes_a_collated_metatensor_batch():
    from monai.data import MetaTensor
    from monai.data.utils import list_data_collate

    teacher = build_teacher("slicewise:torchvision:resnet18", input_size=32)
    items = [{"image": MetaTensor(torch.rand(1, 4, 8, 8), affine=torch.eye(4) * (i + 1))} for i in range(2)]
    batch = list_data_collate(items)["image"]
    torch.testing.assert_close(teacher(batch), teacher(batch.as_tensor()))

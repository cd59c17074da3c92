"""PMC-CLIP teacher: both distributed files load strictly and give open_clip's ModifiedResNet outputs."""

from __future__ import annotations

import pytest
import torch

from monai_rd.networks import WeightsMismatchError, build_teacher
from monai_rd.networks.zoo.pmc_clip import ModifiedResNet

open_clip_mr = pytest.importorskip("open_clip.modified_resnet")

SIZE = 64  # the architecture's image_size for the fabricated files (attention pool grid 2x2)


def _reference(image_size=SIZE):
    torch.manual_seed(0)
    ref = open_clip_mr.ModifiedResNet([3, 4, 6, 3], output_dim=768, heads=32, image_size=image_size, width=64)
    with torch.no_grad():  # non-trivial BatchNorm statistics and bn3 (zero-initialised by CLIP)
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return ref.eval()


@pytest.fixture(scope="module")
def ref():
    return _reference()


@pytest.fixture(scope="module")
def files(ref, tmp_path_factory):
    d = tmp_path_factory.mktemp("pmc")
    plain = d / "image_encoder(resnet50).pth"
    torch.save(ref.state_dict(), plain)
    # checkpoint.pt as written by PMC-CLIP's trainer: DDP "module." keys for every tower, plus bookkeeping
    full = {f"module.visual.{k}": v for k, v in ref.state_dict().items()}
    full["module.text_encoder.embeddings.word_embeddings.weight"] = torch.randn(10, 8)
    full["module.text_projection"] = torch.randn(8, 768)
    full["module.logit_scale"] = torch.tensor(2.659)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))])
    opt.zero_grad()
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    ckpt = d / "checkpoint.pt"
    torch.save({"epoch": 100, "name": "pmc_clip", "state_dict": full, "optimizer": opt.state_dict()}, ckpt)
    return plain, ckpt


def test_real_layout_matches_open_clip():
    """At the real 224 px, every parameter name and shape equals open_clip's (conv1 [32,3,3,3], attnpool [50,2048])."""
    ours = {k: tuple(v.shape) for k, v in ModifiedResNet([3, 4, 6, 3], 768, 32, 224, 64).state_dict().items()}
    reference = open_clip_mr.ModifiedResNet([3, 4, 6, 3], 768, 32, 224, 64)
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours == theirs
    assert ours["conv1.weight"] == (32, 3, 3, 3) and ours["attnpool.positional_embedding"] == (50, 2048)
    assert ours["attnpool.c_proj.weight"] == (768, 2048)


@pytest.mark.parametrize("which", [0, 1], ids=["image_encoder_pth", "checkpoint_pt"])
def test_outputs_equal_reference(ref, files, which):
    teacher = build_teacher("pmc_clip_rn50", weights=files[which], input_size=SIZE, pool="attn")
    x = torch.rand(2, 3, SIZE, SIZE)
    xn = (x - teacher.mean) / teacher.std
    with torch.no_grad():
        expected_attn = ref(xn)
        expected_avg = ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.stem(xn))))).mean(dim=(2, 3))
    assert teacher.feature_dim == 768
    torch.testing.assert_close(teacher(x), expected_attn, atol=1e-5, rtol=1e-5)
    avg = build_teacher("pmc_clip_rn50", weights=files[which], input_size=SIZE)
    assert avg.feature_dim == 2048
    torch.testing.assert_close(avg(x), expected_avg, atol=1e-5, rtol=1e-5)
    maps = build_teacher("pmc_clip_rn50", weights=files[which], input_size=SIZE, pooled=False)
    assert maps.feature_shape == (2048, SIZE // 32, SIZE // 32)
    torch.testing.assert_close(maps(x).mean(dim=(2, 3)), expected_avg, atol=1e-5, rtol=1e-5)


def test_preprocessing_is_openai_clip(files):
    t = build_teacher("pmc_clip_rn50", weights=files[0], input_size=SIZE)
    torch.testing.assert_close(t.mean.flatten(), torch.tensor([0.48145466, 0.4578275, 0.40821073]))
    torch.testing.assert_close(t.std.flatten(), torch.tensor([0.26862954, 0.26130258, 0.27577711]))
    grey = torch.rand(2, 1, 40, 40)
    torch.testing.assert_close(t(grey), t(grey.expand(-1, 3, -1, -1)))  # grey -> 3 channels, resized to 64


def test_wrong_file_names_keys_and_expected_file(tmp_path):
    import torchvision

    bad = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), bad)
    with pytest.raises(WeightsMismatchError, match=r"image_encoder\(resnet50\)\.pth") as e:
        build_teacher("pmc_clip_rn50", weights=bad, input_size=SIZE)
    assert "attnpool.positional_embedding" in str(e.value) and "fc.weight" in str(e.value)


def test_wrong_image_size_is_a_shape_mismatch(files):
    with pytest.raises(WeightsMismatchError, match="attnpool.positional_embedding"):
        build_teacher("pmc_clip_rn50", weights=files[0], input_size=224)

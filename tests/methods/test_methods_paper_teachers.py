"""The methods on the paper's own teachers (PMC-CLIP RN50, RadImageNet DenseNet-121, LVM-Med ViT-B = SAM encoder,
BiomedCLIP ViT-B) at 32 px: tap layouts, what each method trains, and a dry run of every cell of the paper grids."""

from __future__ import annotations

import os

import pytest
import torch

from monai_rd.methods import METHODS, dry_run_method
from monai_rd.networks import LayerTaps, StudentClassifier, build_teacher, default_feature_layer
from monai_rd.networks.layer_taps import default_feature_layers
from tests.conftest import BUNDLES

SIZE = 32
ROOT = os.path.dirname(BUNDLES)
#: the paper teachers, as small as their layouts allow (LVM-Med: 4 blocks, global attention in blocks 1 and 3)
SMALL = {
    "pmc_clip_rn50": dict(input_size=SIZE),
    "radimagenet_densenet121": dict(input_size=SIZE),
    "lvmmed_vit_b": dict(input_size=SIZE, img_size=SIZE, depth=4, global_attn_indexes=(1, 3), window_size=2),
    "biomedclip_vit_b": dict(input_size=SIZE),
}
_TEACHERS: dict = {}


def teacher(name: str):
    if name not in _TEACHERS:
        torch.manual_seed(0)
        _TEACHERS[name] = build_teacher(name, **SMALL[name])
    return _TEACHERS[name]


def _vit(t):
    return t.backbone.model.vit


@pytest.mark.parametrize("name", sorted(SMALL))
def test_taps_follow_each_teachers_layout(name):
    t = teacher(name)
    x = torch.rand(2, 3, SIZE, SIZE)
    if name == "pmc_clip_rn50":
        layers = default_feature_layers(t, SIZE, 4)
        assert layers == [f"backbone.model.visual.layer{i}" for i in range(1, 5)]
        expected = [(256, 8, 8), (512, 4, 4), (1024, 2, 2), (2048, 1, 1)]
    elif name == "radimagenet_densenet121":
        layers = default_feature_layers(t, SIZE, 4)
        assert layers[-1] == "backbone.model.features" == default_feature_layer(t, SIZE)
        expected = [(256, 8, 8), (512, 4, 4), (1024, 2, 2), (1024, 1, 1)]
    else:  # ViTs: evenly spaced blocks; tokens / channels-last maps arrive as [B, 768, 2, 2]
        layers = default_feature_layers(t, SIZE, 4 if name == "lvmmed_vit_b" else 3)
        n = len(_vit(t).blocks)
        assert layers[-1] == f"backbone.model.vit.blocks.{n - 1}"
        expected = [(768, 2, 2)] * len(layers)
    taps = LayerTaps(t, layers, "teacher")
    assert taps.shapes(SIZE) == expected
    t(x)
    got = taps.pop()
    assert [tuple(f.shape[1:]) for f in got] == expected
    if name in ("lvmmed_vit_b", "biomedclip_vit_b"):  # the values are the block's own, only re-laid out
        raw = []
        h = _vit(t).blocks[-1].register_forward_hook(lambda m, i, o: raw.append(o))
        t(x)
        h.remove()
        taps.pop()
        if name == "lvmmed_vit_b":
            assert raw[0].shape == (2, 2, 2, 768)  # SAM blocks are channels-last
            torch.testing.assert_close(got[-1], raw[0].permute(0, 3, 1, 2))
        else:
            assert raw[0].shape == (2, 1 + 4, 768)  # CLS + 2x2 patch tokens
            torch.testing.assert_close(got[-1], raw[0][:, 1:].transpose(1, 2).reshape(2, 768, 2, 2))


def test_sam_taps_inside_a_windowed_block_are_refused():
    with pytest.raises(ValueError, match="windowed block"):
        LayerTaps(teacher("lvmmed_vit_b"), ["backbone.model.vit.blocks.0.attn"], "teacher")


def _student():
    torch.manual_seed(1)
    return StudentClassifier("resnet18", 3)


#: cells of the next test that run in the fast tier: the adaptations specific to a teacher
FAST = {("pmc_clip_rn50", "lora_kd"), ("lvmmed_vit_b", "vpt_kd"), ("lvmmed_vit_b", "mgd")}
CELLS = [
    pytest.param(t, m, marks=() if (t, m) in FAST else pytest.mark.slow)
    for t in sorted(SMALL)
    for m in sorted(METHODS.names())
]


@pytest.mark.parametrize("name,method", CELLS)
def test_every_method_trains_what_it_means_on_each_paper_teacher(name, method):
    """Two steps of each stage: every parameter the stage optimises gets a non-zero gradient (LoRA's A in the
    second step, its B starting at 0), no other parameter gets any, and every loss term is finite."""
    t = teacher(name)
    frozen = {n: p.detach().clone() for n, p in t.named_parameters()}
    if method == "vpt_kd" and name in ("pmc_clip_rn50", "radimagenet_densenet121"):
        with pytest.raises(ValueError, match="Vision Transformer"):
            dry_run_method(method, t, _student(), 3, image_size=SIZE)
        return
    # SemCKD's query/key heads have 2 * B / 4 hidden ReLUs: at B = 4 all of them can be dead for a random teacher
    report = dry_run_method(method, t, _student(), 3, image_size=SIZE, batch_size=16 if method == "semckd" else 4)
    assert report.main_trained > 0 and report.main_loss
    if method in ("kd", "direct_reprogramming", "lora_kd", "vpt_kd"):
        assert report.stage1_trained > 0 and report.stage1_loss
    for n, p in t.named_parameters():  # the shared frozen teacher never changes
        assert not p.requires_grad and torch.equal(p, frozen[n]), n

"""Deterministic head / random rest of nested MONAI Composes: the split goes into nested plain Composes and the rest
reproduces the whole transform bit for bit (the bundles' own transforms, every view)."""

from __future__ import annotations

import os
from copy import deepcopy

import pytest
import torch
from monai.transforms import Compose, OneOf, RandFlipd, ScaleIntensityd

from monai_rd.data import index_busi
from monai_rd.data.feature_cache import apply_view, item_id, view_seed
from monai_rd.data.transform_split import apply_rest, deterministic_head, deterministic_path
from tests.data.test_feature_cache import bundle_transform


def test_the_bundle_head_reaches_into_the_nested_preset():
    t = bundle_transform()
    # LoadImaged, then inside the ultrasound preset: scale, fan crop, resize, RGB (the flips are the first random)
    assert deterministic_path(t) == [1, 4]
    assert deterministic_path(bundle_transform("validate")) == [3]  # all deterministic
    assert deterministic_path(None) == [] and deterministic_path(ScaleIntensityd("x")) == []
    one_of = Compose([ScaleIntensityd("x"), OneOf([ScaleIntensityd("x")]), RandFlipd("x", prob=1.0)])
    assert deterministic_path(one_of) == [1]  # OneOf chooses what runs: never split into


@pytest.mark.parametrize("split", ["train", "validate"])
def test_rest_after_head_is_the_whole_transform(busi_dir, split):
    items = index_busi(busi_dir, val_fraction=0.2, seed=0)["training"][:4]
    t = bundle_transform(split)
    path = deterministic_path(t)
    head = deterministic_head(t, path)
    for item in items:
        h = head(dict(item))
        assert tuple(h["image"].shape) == (3, 32, 32)  # cropped and resized once, in the head
        for view in range(3):
            seed = view_seed(item_id(item), view)
            whole = apply_view(t, item, seed)
            t.set_random_state(seed=seed)
            rest = apply_rest(t, deepcopy(h), path)
            assert torch.equal(whole["image"].as_subclass(torch.Tensor), rest["image"].as_subclass(torch.Tensor))
            assert whole["label"] == rest["label"] and os.fspath(whole["image"].meta["filename_or_obj"]) == os.fspath(
                rest["image"].meta["filename_or_obj"]
            )

"""BUSI indexer on a fabricated folder in the real layout, and its refusals."""

import json
import os
import shutil

import pytest

from monai_rd.data import BUSI_CLASSES, check_disjoint_splits, index_busi, make_busi_like, stratified_split


def test_index_excludes_masks_and_splits_three_ways(busi_dir, tmp_path):
    datalist_file = tmp_path / "datalist.json"
    dl = index_busi(busi_dir, seed=3, datalist_file=datalist_file)
    items = dl["training"] + dl["validation"] + dl["test"]
    assert len(items) == 30 and not any("_mask" in i["image"] for i in items)
    for label, name in enumerate(BUSI_CLASSES):
        cls = [i for i in items if i["label"] == label]
        assert len(cls) == 10 and all(i["class_name"] == name and f"/{name}/" in i["image"] for i in cls)
        assert sum(i["label"] == label for i in dl["validation"]) == 2  # 3:1:1 in every class
        assert sum(i["label"] == label for i in dl["test"]) == 2
    check_disjoint_splits(dl, group_key=None)
    assert json.loads(datalist_file.read_text()) == dl
    # seeded: same seed same split, another seed another split; parent folder accepted too
    assert index_busi(os.path.dirname(busi_dir), seed=3) == dl
    assert index_busi(busi_dir, seed=4)["split_hash"] != dl["split_hash"]


def test_stratified_split_properties():
    labels = [0] * 7 + [1] * 2 + [2] * 1
    train, val = stratified_split(labels, 0.2, seed=0)
    assert sorted(train + val) == list(range(10))
    assert [labels[i] for i in val].count(1) == 1 and [labels[i] for i in val].count(0) == 1
    assert 9 in train  # a singleton class stays in training
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0)


def test_refusals_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index_busi(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="No BUSI images"):
        index_busi(empty)
    root = make_busi_like(tmp_path / "d1", n_per_class=3, size=16)
    os.makedirs(os.path.join(root, "cancer"))
    with pytest.raises(ValueError, match="cancer"):
        index_busi(root)
    root = make_busi_like(tmp_path / "d2", n_per_class=3, size=16)
    bad = os.path.join(root, "benign", "benign (2).png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ValueError, match=r"benign \(2\)\.png"):
        index_busi(root)
    root = make_busi_like(tmp_path / "d3", n_per_class=3, size=16)
    shutil.copy(os.path.join(root, "normal", "normal (1).png"), os.path.join(root, "normal", "notes.txt"))
    with pytest.raises(ValueError, match="notes.txt"):
        index_busi(root)

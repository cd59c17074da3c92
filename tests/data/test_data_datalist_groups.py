"""Group-aware stratified split: whole groups on one side, stratified, seeded."""

from collections import Counter

import numpy as np
import pytest

from monai_rd.data import finalize_datalist, stratified_split


def _groups_fabric(seed=0):
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for g in range(60):
        label = g % 3
        for _ in range(int(rng.integers(1, 5))):
            labels.append(label)
            groups.append(f"lesion_{g}")
    return labels, groups


def test_no_group_on_both_sides_and_every_item_once():
    labels, groups = _groups_fabric()
    train, val = stratified_split(labels, 0.2, seed=3, groups=groups)
    assert sorted(train + val) == list(range(len(labels)))
    assert not {groups[i] for i in train} & {groups[i] for i in val}


def test_grouped_split_is_stratified_and_near_the_fraction():
    labels, groups = _groups_fabric()
    train, val = stratified_split(labels, 0.2, seed=1, groups=groups)
    per_class = Counter(labels)
    val_per_class = Counter(labels[i] for i in val)
    for label, n in per_class.items():
        share = val_per_class[label] / n
        assert 0.1 <= share <= 0.3, (label, share)


def test_grouped_split_is_seeded():
    labels, groups = _groups_fabric()
    assert stratified_split(labels, 0.2, 5, groups=groups) == stratified_split(labels, 0.2, 5, groups=groups)
    assert stratified_split(labels, 0.2, 5, groups=groups) != stratified_split(labels, 0.2, 6, groups=groups)


def test_group_takes_its_majority_label_and_both_sides_get_a_group():
    # two groups of class 1 only: one must go to each side
    labels = [0, 0, 1, 1, 1, 0]
    groups = ["a", "a", "b", "b", "c", "d"]
    train, val = stratified_split(labels, 0.5, 0, groups=groups)
    sides = {g: ("val" if i in val else "train") for i, g in enumerate(groups)}
    assert {sides["b"], sides["c"]} == {"train", "val"}
    assert {sides["a"], sides["d"]} == {"train", "val"}


def test_groups_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="one group per item"):
        stratified_split([0, 1, 0], 0.2, 0, groups=["a", "b"])


def test_ungrouped_split_unchanged():
    labels = [0] * 10 + [1] * 5
    train, val = stratified_split(labels, 0.2, 0)
    assert Counter(labels[i] for i in val) == {0: 2, 1: 1}


def test_finalize_datalist_hash_ignores_previous_hash(tmp_path):
    a = finalize_datalist({"training": [{"image": "x", "label": 0}], "validation": []})
    b = finalize_datalist(dict(a), tmp_path / "d.json")
    assert a["split_hash"] == b["split_hash"] and (tmp_path / "d.json").is_file()


def test_big_group_does_not_swallow_validation():
    # class 0: one group of 20 and ten singletons; target 6 -> validation takes singletons only
    labels = [0] * 30
    groups = ["big"] * 20 + [f"s{i}" for i in range(10)]
    for seed in range(5):
        train, val = stratified_split(labels, 0.2, seed, groups=groups)
        assert len(val) == 6 and all(groups[i] != "big" for i in val)


def test_smallest_group_when_none_fits():
    labels = [0] * 9
    groups = ["a"] * 4 + ["b"] * 3 + ["c"] * 2  # target round(9 * 0.1) = 1: nothing fits
    train, val = stratified_split(labels, 0.1, 0, groups=groups)
    assert [groups[i] for i in val] == ["c", "c"]

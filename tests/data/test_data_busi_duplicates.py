"""BUSI indexer: near-duplicate grouping keeps planted duplicates on one side; malformed folders refused."""

import os
import shutil

import pytest

from monai_rd.data import index_busi, make_busi_like


@pytest.fixture(scope="module")
def busi(tmp_path_factory):
    return make_busi_like(tmp_path_factory.mktemp("busi_dup"), n_per_class=8, size=32, seed=1)


def _side(datalist):
    return {os.path.basename(i["image"]): k for k in ("training", "validation", "test") for i in datalist[k]}


def test_planted_duplicates_found_and_never_split(busi):
    expected = [[f"{c}/{c} (1).png", f"{c}/{c} (8).png"] for c in ("benign", "malignant", "normal")] + [
        [f"{c}/{c} (2).png", f"{c}/{c} (7).png"] for c in ("benign", "malignant", "normal")
    ]
    for seed in range(6):
        dl = index_busi(busi, seed=seed)
        assert sorted(map(sorted, dl["duplicate_groups"])) == sorted(map(sorted, expected))
        side = _side(dl)
        for group in dl["duplicate_groups"]:
            assert len({side[os.path.basename(n)] for n in group}) == 1, (seed, group)
        assert len(dl["training"]) + len(dl["validation"]) + len(dl["test"]) == 24


def test_grouping_can_be_turned_off(busi):
    dl = index_busi(busi, group_duplicates=False)
    assert dl["duplicate_groups"] == []
    # without grouping some seed puts a planted pair on both sides: the leak the grouping prevents
    leaked = False
    for seed in range(10):
        side = _side(index_busi(busi, seed=seed, group_duplicates=False))
        leaked |= side["benign (1).png"] != side["benign (8).png"] or side["normal (1).png"] != side["normal (8).png"]
    assert leaked


def test_make_busi_like_duplicates_are_exact_and_near(busi):
    with open(os.path.join(busi, "benign", "benign (1).png"), "rb") as a:
        with open(os.path.join(busi, "benign", "benign (8).png"), "rb") as b:
            assert a.read() == b.read()
    from PIL import Image

    with Image.open(os.path.join(busi, "benign", "benign (7).png")) as im:
        assert im.size == (40, 40)  # resized copy of the 32 px image 2


def test_malformed_busi_refused(tmp_path, busi):
    bad = tmp_path / "bad"
    shutil.copytree(busi, bad / "Dataset_BUSI_with_GT")
    root = bad / "Dataset_BUSI_with_GT"
    (root / "benign" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt"):
        index_busi(bad)
    os.remove(root / "benign" / "notes.txt")
    (root / "benign" / "benign (99).png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ValueError, match=r"Unreadable image .*benign \(99\)\.png"):
        index_busi(bad)
    os.remove(root / "benign" / "benign (99).png")
    os.makedirs(root / "tumour")
    with pytest.raises(ValueError, match="only the class folders"):
        index_busi(bad)

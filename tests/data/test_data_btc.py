"""BTC indexer (Training/Testing class folders) and the generic class-folder indexer."""

import os
import shutil

import pytest

from monai_rd.data import BTC_CLASSES, index_btc, index_class_folders, make_btc_like


@pytest.fixture(scope="module")
def btc(tmp_path_factory):
    return make_btc_like(tmp_path_factory.mktemp("btc"), n_train_per_class=5, n_test_per_class=2, size=32, seed=0)


def test_btc_training_split_and_testing_kept(btc):
    dl = index_btc(btc)
    assert dl["classes"] == list(BTC_CLASSES)
    for key, folder in (("training", "Training"), ("validation", "Training"), ("test", "Testing")):
        for item in dl[key]:
            parts = item["image"].split(os.sep)
            assert parts[-3] == folder and parts[-2] == BTC_CLASSES[item["label"]] == item["class_name"]
    assert len(dl["test"]) == 8 and len(dl["training"]) + len(dl["validation"]) == 20
    assert sorted(i["label"] for i in dl["validation"]) == [0, 1, 2, 3]
    names = {os.path.basename(i["image"]) for i in dl["training"] + dl["validation"]}
    assert {"gg (1).jpg", "m (1).jpg", "1.jpg", "p (1).jpg"} <= names
    assert {os.path.basename(i["image"]) for i in dl["test"]} == {"image(1).jpg", "image(2).jpg"}


def test_btc_malformed(btc, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(btc, root)
    os.rename(root / "Testing" / "no_tumor", root / "Testing" / "normal")
    with pytest.raises(ValueError, match=r"Unexpected entries \['normal'\]"):
        index_btc(root)
    os.rename(root / "Testing" / "normal", root / "Testing" / "no_tumor")
    (root / "Training" / "glioma_tumor" / "gg (9).png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"gg \(9\)\.png"):
        index_btc(root)
    os.remove(root / "Training" / "glioma_tumor" / "gg (9).png")
    (root / "Training" / "glioma_tumor" / "gg (9).jpg").write_bytes(b"\xff\xd8\xff\xe0broken")
    with pytest.raises(ValueError, match="Unreadable image"):
        index_btc(root)
    os.remove(root / "Training" / "glioma_tumor" / "gg (9).jpg")
    (root / "README.txt").write_text("x")
    with pytest.raises(ValueError, match="only Training/ and Testing/"):
        index_btc(root)
    os.remove(root / "README.txt")
    shutil.rmtree(root / "Testing")
    with pytest.raises(FileNotFoundError, match="Testing"):
        index_btc(root)


def test_generic_class_folders(btc, tmp_path):
    dl = index_class_folders(os.path.join(btc, "Training"))
    assert dl["classes"] == sorted(BTC_CLASSES)
    order = ["pituitary_tumor", "no_tumor", "meningioma_tumor", "glioma_tumor"]
    dl = index_class_folders(os.path.join(btc, "Training"), classes=order)
    assert dl["classes"] == order
    assert all(i["class_name"] == dl["classes"][i["label"]] for i in dl["training"])
    empty = tmp_path / "empty"
    os.makedirs(empty / "a")
    with pytest.raises(ValueError, match="at least two are needed"):
        index_class_folders(empty)
    os.makedirs(empty / "b")
    with pytest.raises(FileNotFoundError, match="is empty"):
        index_class_folders(empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index_class_folders(tmp_path / "nowhere")

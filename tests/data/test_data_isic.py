"""ISIC 2018 task 3 and HAM10000 indexers on fabricated releases in their exact layouts, and malformed variants."""

import csv
import os
import shutil

import pytest

from monai_rd.data import (
    ISIC2018_CLASSES,
    index_dataset,
    index_ham10000,
    index_isic2018,
    make_ham10000_like,
    make_isic2018_like,
)


@pytest.fixture(scope="module")
def isic(tmp_path_factory):
    return make_isic2018_like(
        tmp_path_factory.mktemp("isic"), n_per_class=4, size=32, seed=0, n_val_per_class=0, n_test_per_class=0
    )  # training release only: see test_data_splits


@pytest.fixture(scope="module")
def ham(tmp_path_factory):
    return make_ham10000_like(tmp_path_factory.mktemp("ham"), n_per_class=4, size=32, seed=0, n_test_per_class=0)


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _rewrite(path, fn):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows = fn(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _truth(root):
    """image -> (class, lesion) read back from the fabricated CSVs, independently of the indexer."""
    gt_csv = os.path.join(root, "ISIC2018_Task3_Training_GroundTruth", "ISIC2018_Task3_Training_GroundTruth.csv")
    with open(gt_csv) as f:
        gt = {r["image"]: next(c for c in ISIC2018_CLASSES if r[c] == "1.0") for r in csv.DictReader(f)}
    with open(os.path.join(root, "ISIC2018_Task3_Training_LesionGroupings.csv")) as f:
        lesion = {r["image"]: r["lesion_id"] for r in csv.DictReader(f)}
    return gt, lesion


def test_isic_labels_follow_csv_columns_and_split_by_lesion(isic):
    gt, lesion = _truth(isic)
    dl = index_isic2018(isic)
    assert dl["classes"] == ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    items = dl["training"] + dl["validation"] + dl["test"]
    assert len(items) == len(gt) == 28 and dl["test_split"] == "held-out"
    for item in items:
        image = os.path.basename(item["image"])[:-4]
        assert item["class_name"] == gt[image] and ISIC2018_CLASSES[item["label"]] == gt[image]
    train_lesions = {lesion[os.path.basename(i["image"])[:-4]] for i in dl["training"]}
    test_lesions = {lesion[os.path.basename(i["image"])[:-4]] for i in dl["test"]}
    assert train_lesions and test_lesions and not train_lesions & test_lesions
    assert {i["label"] for i in dl["test"]} == set(range(7))  # stratified
    assert index_dataset("isic2018", isic) == dl


def test_isic_malformed_variants(isic, tmp_path):
    root = _copy(isic, tmp_path)
    gt_csv = root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    original = gt_csv.read_text()
    # missing column
    _rewrite(gt_csv, lambda rows: [r[:-1] for r in rows])
    with pytest.raises(ValueError, match=r"lacks the columns \['VASC'\]"):
        index_isic2018(root)
    # a row that is not one-hot
    gt_csv.write_text(original)
    _rewrite(gt_csv, lambda rows: rows[:1] + [[rows[1][0]] + ["1.0"] * 2 + ["0.0"] * 5] + rows[2:])
    with pytest.raises(ValueError, match="line 2: .* is not one-hot"):
        index_isic2018(root)
    # an image listed but missing
    gt_csv.write_text(original)
    first = original.splitlines()[1].split(",")[0]
    os.rename(root / "ISIC2018_Task3_Training_Input" / f"{first}.jpg", tmp_path / "moved.jpg")
    with pytest.raises(FileNotFoundError, match=f"{first}.jpg"):
        index_isic2018(root)
    os.rename(tmp_path / "moved.jpg", root / "ISIC2018_Task3_Training_Input" / f"{first}.jpg")
    # an image without ground truth
    inputs = root / "ISIC2018_Task3_Training_Input"
    shutil.copyfile(inputs / f"{first}.jpg", inputs / "ISIC_9999999.jpg")
    with pytest.raises(ValueError, match="ISIC_9999999.jpg.* has no row"):
        index_isic2018(root)
    os.remove(root / "ISIC2018_Task3_Training_Input" / "ISIC_9999999.jpg")
    # a stray non-jpg file (the official ATTRIBUTION.txt / LICENSE.txt are accepted)
    (root / "ISIC2018_Task3_Training_Input" / "thumbs.db").write_text("x")
    with pytest.raises(ValueError, match="thumbs.db"):
        index_isic2018(root)
    os.remove(root / "ISIC2018_Task3_Training_Input" / "thumbs.db")
    # no lesion table: refused unless the user opts out of lesion grouping
    os.remove(root / "ISIC2018_Task3_Training_LesionGroupings.csv")
    with pytest.raises(FileNotFoundError, match="LesionGroupings"):
        index_isic2018(root)
    assert len(index_isic2018(root, group_by_lesion=False)["training"]) > 0


def test_isic_lesions_from_ham_metadata(isic, ham, tmp_path):
    root = _copy(isic, tmp_path)
    os.remove(root / "ISIC2018_Task3_Training_LesionGroupings.csv")
    shutil.copyfile(os.path.join(ham, "HAM10000_metadata.csv"), root / "HAM10000_metadata.csv")
    dl = index_isic2018(root)  # same seed -> same images and lesions as the groupings file
    names = lambda d: [(os.path.basename(i["image"]), i["label"]) for i in d["training"]]  # noqa: E731
    assert names(dl) == names(index_isic2018(isic))


def test_ham10000_matches_isic_labels_and_splits_by_lesion(ham):
    dl = index_ham10000(ham)
    with open(os.path.join(ham, "HAM10000_metadata.csv")) as f:
        meta = {r["image_id"]: r for r in csv.DictReader(f)}
    items = dl["training"] + dl["validation"] + dl["test"]
    assert len(items) == len(meta) == 28
    for item in items:
        row = meta[os.path.basename(item["image"])[:-4]]
        assert item["class_name"] == row["dx"].upper()
        assert set(item) == {"image", "label", "class_name"}  # no age/sex/site in the datalist
    lesions = lambda part: {meta[os.path.basename(i["image"])[:-4]]["lesion_id"] for i in dl[part]}  # noqa: E731
    assert not lesions("training") & lesions("test") and not lesions("validation") & lesions("test")
    folders = {os.path.basename(os.path.dirname(i["image"])) for i in items}
    assert folders == {"HAM10000_images_part_1", "HAM10000_images_part_2"}


def test_ham10000_malformed_variants(ham, tmp_path):
    root = _copy(ham, tmp_path)
    meta = root / "HAM10000_metadata.csv"
    original = meta.read_text()
    _rewrite(meta, lambda rows: rows[:1] + [rows[1][:2] + ["melanoma"] + rows[1][3:]] + rows[2:])
    with pytest.raises(ValueError, match="unknown dx 'melanoma'"):
        index_ham10000(root)
    meta.write_text(original.replace("lesion_id,image_id,dx", "lesion,image_id,dx", 1))
    with pytest.raises(ValueError, match="lacks the columns \\['lesion_id'\\]"):
        index_ham10000(root)
    meta.write_text(original + original.splitlines()[1] + "\n")
    with pytest.raises(ValueError, match="listed twice"):
        index_ham10000(root)
    meta.write_text(original)
    shutil.rmtree(root / "HAM10000_images_part_2")
    with pytest.raises(FileNotFoundError, match="is in no image folder"):
        index_ham10000(root)

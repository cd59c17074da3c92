"""Three-way splits in every indexer: training / validation / test disjoint by file and by group, the official
test split where the dataset has one, k-fold cross-validation with a fixed test split, the paper's 4:1 protocol."""

from __future__ import annotations

import csv
import os
from collections import Counter

import pytest

from monai_rd.data import (
    SPLIT_PROTOCOLS,
    SplitTooSmallError,
    assign_splits,
    check_disjoint_splits,
    index_btc,
    index_busi,
    index_chestxray14,
    index_class_folders,
    index_covid_ct,
    index_csv,
    index_ham10000,
    index_isic2018,
    index_mosmed,
    kfold_split,
    make_btc_like,
    make_busi_like,
    make_chestxray14_like,
    make_covid_ct_like,
    make_ham10000_like,
    make_isic2018_like,
)

SPLITS = ("training", "validation", "test")


def _names(datalist, split):
    return {os.path.basename(i["image"]) for i in datalist[split]}


def _stem(item):
    return os.path.splitext(os.path.basename(item["image"]))[0]


def _assert_disjoint(datalist, group_of):
    """No file and no group (``group_of(item)``) in two splits; every split non-empty."""
    check_disjoint_splits(datalist, group_key=None)
    groups = {s: {group_of(i) for i in datalist[s]} for s in SPLITS}
    assert all(datalist[s] for s in SPLITS), {s: len(datalist[s]) for s in SPLITS}
    assert not groups["training"] & groups["validation"]
    assert not (groups["training"] | groups["validation"]) & groups["test"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    return {
        "busi": make_busi_like(root / "busi", n_per_class=10, size=32, seed=0),
        "isic": make_isic2018_like(root / "isic", n_per_class=8, size=32, seed=0),
        "ham": make_ham10000_like(root / "ham", n_per_class=8, size=32, seed=0),
        "covid": make_covid_ct_like(root / "covid", n_per_class=10, size=32, seed=0),
        "btc": make_btc_like(root / "btc", n_train_per_class=6, n_test_per_class=2, size=32, seed=0),
        "cxr": make_chestxray14_like(root / "cxr", n_patients=16, size=32, seed=0),
    }


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_busi_held_out_test_keeps_duplicates_together(data):
    dl = index_busi(data["busi"], verify_images=False)
    assert dl["test_split"] == "held-out" and dl["split_protocol"] == "holdout"
    cluster = {os.path.basename(n): k for k, names in enumerate(dl["duplicate_groups"]) for n in names}
    _assert_disjoint(dl, lambda i: cluster.get(os.path.basename(i["image"]), i["image"]))
    assert len(dl["duplicate_groups"]) == 6
    for split in SPLITS:  # stratified: every class in every split
        assert {i["label"] for i in dl[split]} == {0, 1, 2}
    # the test split does not move with the training seed
    assert _names(index_busi(data["busi"], seed=5, verify_images=False), "test") == _names(dl, "test")


def test_isic2018_official_validation_and_test_sets(data):
    root = data["isic"]
    dl = index_isic2018(root, verify_images=False)
    assert dl["test_split"] == "official" and "split_notes" not in dl
    official = {
        s: {f[:-4] for f in os.listdir(os.path.join(root, f"ISIC2018_Task3_{r}_Input")) if f.endswith(".jpg")}
        for s, r in (("validation", "Validation"), ("test", "Test"))
    }
    assert {_stem(i) for i in dl["test"]} == official["test"] and len(official["test"]) == 7 * 2
    assert {_stem(i) for i in dl["validation"]} == official["validation"] and len(official["validation"]) == 7 * 2
    truth = {
        r["image"]: r
        for r in _csv_rows(os.path.join(root, "ISIC2018_Task3_Test_GroundTruth", "ISIC2018_Task3_Test_GroundTruth.csv"))
    }
    assert all(truth[_stem(i)][i["class_name"]] == "1.0" for i in dl["test"])
    lesion = {
        r["image"]: r["lesion_id"] for r in _csv_rows(os.path.join(root, "ISIC2018_Task3_Training_LesionGroupings.csv"))
    }
    _assert_disjoint(dl, lambda i: lesion.get(_stem(i), _stem(i)))
    # folds rotate over training + official validation; the official test stays
    folded = [index_isic2018(root, verify_images=False, folds=3, fold=k) for k in range(3)]
    assert all(_names(d, "test") == _names(dl, "test") for d in folded)
    val = Counter(n for d in folded for n in _names(d, "validation"))
    assert set(val.values()) == {1} and len(val) == len(dl["training"]) + len(dl["validation"])
    for d in folded:
        _assert_disjoint(d, lambda i: lesion.get(_stem(i), _stem(i)))


def test_isic2018_without_official_ground_truth_carves_a_lesion_grouped_test(data, tmp_path):
    import shutil

    root = tmp_path / "isic"
    shutil.copytree(data["isic"], root)
    shutil.rmtree(root / "ISIC2018_Task3_Test_GroundTruth")  # test images without their ground truth
    shutil.rmtree(root / "ISIC2018_Task3_Validation_Input")  # validation ground truth without its images
    dl = index_isic2018(root, verify_images=False)
    assert dl["test_split"] == "held-out" and len(dl["split_notes"]) == 2
    assert "ISIC2018_Task3_Test_GroundTruth.csv is not" in dl["split_notes"][1]
    lesion = {r["image"]: r["lesion_id"] for r in _csv_rows(root / "ISIC2018_Task3_Training_LesionGroupings.csv")}
    _assert_disjoint(dl, lambda i: lesion[_stem(i)])
    assert not {_stem(i) for s in SPLITS for i in dl[s]} - set(lesion)  # only training images were split
    assert index_isic2018(data["isic"], use_official_sets=False, verify_images=False)["test_split"] == "held-out"


def test_ham10000_official_test_from_dataverse_layout(data):
    root = data["ham"]
    dl = index_ham10000(root, verify_images=False)
    assert dl["test_split"] == "official"
    test_rows = _csv_rows(os.path.join(root, "ISIC2018_Task3_Test_GroundTruth.csv"))
    assert {_stem(i): i["class_name"] for i in dl["test"]} == {r["image_id"]: r["dx"].upper() for r in test_rows}
    lesion = {r["image_id"]: r["lesion_id"] for r in _csv_rows(os.path.join(root, "HAM10000_metadata.csv"))}
    lesion.update({r["image_id"]: r["lesion_id"] for r in test_rows})
    _assert_disjoint(dl, lambda i: lesion[_stem(i)])


def test_covid_ct_official_split_files(data):
    root = data["covid"]
    dl = index_covid_ct(root, verify_images=False)
    listed = set()
    for c in ("COVID", "NonCOVID"):
        with open(os.path.join(root, "Data-split", c, f"testCT_{c}.txt")) as f:
            listed |= {line.strip() for line in f if line.strip()}
    assert dl["test_split"] == "official" and _names(dl, "test") == listed
    _assert_disjoint(dl, lambda i: i["image"])
    held = index_covid_ct(root, verify_images=False, use_official_split=False)
    assert held["test_split"] == "held-out"
    _assert_disjoint(held, lambda i: i["image"])


def test_btc_official_testing_folder(data):
    dl = index_btc(data["btc"], verify_images=False)
    assert dl["test_split"] == "official"
    assert all("/Testing/" in i["image"] for i in dl["test"]) and len(dl["test"]) == 8
    assert all("/Training/" in i["image"] for s in ("training", "validation") for i in dl[s])
    _assert_disjoint(dl, lambda i: i["image"])


def test_chestxray14_official_test_list_and_patients(data):
    root = data["cxr"]
    dl = index_chestxray14(root)
    with open(os.path.join(root, "test_list.txt")) as f:
        listed = {line.strip() for line in f if line.strip()}
    assert dl["test_split"] == "official" and _names(dl, "test") == listed
    patient = {r["Image Index"]: r["Patient ID"] for r in _csv_rows(os.path.join(root, "Data_Entry_2017.csv"))}
    _assert_disjoint(dl, lambda i: patient[os.path.basename(i["image"])])
    held = index_chestxray14(root, use_official_lists=False)
    assert held["test_split"] == "held-out"
    _assert_disjoint(held, lambda i: patient[os.path.basename(i["image"])])


def test_class_folders_and_csv_groups(nifti_dir, tmp_path):
    dl = index_class_folders(nifti_dir, slice_mode="foreground", verify=False)
    assert dl["test_split"] == "held-out"
    _assert_disjoint(dl, lambda i: i["group"])
    check_disjoint_splits(dl)  # the same through the datalist's own group key
    lines = ["path,diagnosis,patient"] + [
        f"{c}/subject{s}.nii.gz,{c},P{c}{s}" for c in ("normal", "lesion") for s in range(4)
    ]
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    dl = index_csv(
        csv_file,
        image_column="path",
        label_column="diagnosis",
        group_column="patient",
        root=nifti_dir,
        slice_mode="foreground",
        verify=False,
    )
    _assert_disjoint(dl, lambda i: i["group"])


def test_busi_kfold_rotates_validation_and_fixes_test(data):
    folded = [index_busi(data["busi"], verify_images=False, folds=4, fold=k) for k in range(4)]
    tests = {frozenset(_names(d, "test")) for d in folded}
    assert len(tests) == 1
    val = Counter(n for d in folded for n in _names(d, "validation"))
    assert set(val.values()) == {1} and len(val) == 30 - len(next(iter(tests)))  # every non-test image once
    for d in folded:
        assert (d["folds"], d["split_protocol"]) == (4, "holdout")
        cluster = {os.path.basename(n): k for k, names in enumerate(d["duplicate_groups"]) for n in names}
        _assert_disjoint(d, lambda i: cluster.get(os.path.basename(i["image"]), i["image"]))
    assert len({d["split_hash"] for d in folded}) == 4


def test_paper_protocol_selects_on_the_reporting_set(data):
    dl = index_busi(data["busi"], verify_images=False, split_protocol="paper_4to1")
    assert dl["split_protocol"] == "paper_4to1" and dl["validation"] == dl["test"]
    assert len(dl["test"]) == 6 and len(dl["training"]) == 24  # 4:1
    check_disjoint_splits(dl, group_key=None)  # validation == test is allowed here, and only here
    btc = index_btc(data["btc"], verify_images=False, split_protocol="paper_4to1")
    assert btc["validation"] == btc["test"] and all("/Testing/" in i["image"] for i in btc["validation"])
    assert len(btc["training"]) == 24  # all of Training/
    with pytest.raises(ValueError, match="validation"):
        check_disjoint_splits({**dl, "split_protocol": "holdout"}, group_key=None)
    assert set(SPLIT_PROTOCOLS) == {"holdout", "paper_4to1"}


def test_kfold_split_partitions_groups():
    labels = [k % 3 for k in range(60)]
    groups = [k // 3 if k < 30 else k for k in range(60)]  # some groups of 3 (mixed labels), some singletons
    seen = []
    for fold in range(5):
        train, val = kfold_split(labels, 5, fold, seed=1, groups=groups)
        assert sorted(train + val) == list(range(60))
        assert not {groups[i] for i in train} & {groups[i] for i in val}
        assert 9 <= len(val) <= 15
        seen += val
    assert sorted(seen) == list(range(60))
    assert kfold_split(labels, 5, 2, seed=1, groups=groups) == kfold_split(labels, 5, 2, seed=1, groups=groups)


def test_a_split_that_cannot_be_made_says_what_is_needed(tmp_path):
    from monai_rd.data import validate_datalist

    root = make_busi_like(tmp_path / "busi", n_per_class=2, size=32, seed=0)
    datalist = index_busi(root, verify_images=False)  # indexing alone succeeds: the bundles' check refuses it
    assert datalist["validation"] == [] and "split_shortfall" in datalist
    with pytest.raises(SplitTooSmallError) as info:
        validate_datalist(datalist, decode=False)
    message = str(info.value)
    assert message.startswith("the 'validation' split is empty: split_protocol='holdout' takes at least one")
    assert (
        "needs at least 3 images per class; this dataset has at most 2 (benign: 2, malignant: 2, normal: 2)" in message
    )
    for option in ("--split_protocol paper_4to1", "--val_fraction (0.2)", "--test_fraction (0.2)"):
        assert option in message
    # what the message promises holds: the paper's protocol splits 2 per class, holdout 3 per class
    paper = index_busi(root, verify_images=False, split_protocol="paper_4to1")
    assert [len(paper[s]) for s in SPLITS] == [3, 3, 3] and "split_shortfall" not in paper
    three = index_busi(make_busi_like(tmp_path / "busi3", n_per_class=3, size=32, seed=0), verify_images=False)
    assert [len(three[s]) for s in SPLITS] == [3, 3, 3] and "split_shortfall" not in three
    validate_datalist(three, decode=False)


def test_a_grouped_split_that_cannot_be_made_counts_groups():
    from monai_rd.data.datalist import shortfall_message

    # ISIC-like: 2 lesions per class, 3 images each; lesions are never split, so holdout needs 3 per class
    items = [{"image": f"ISIC_{k}.jpg"} for k in range(12)]
    labels, lesions = [k // 6 for k in range(12)], [k // 3 for k in range(12)]
    message = shortfall_message(assign_splits(items, labels, groups=lesions)["split_shortfall"], ["MEL", "NV"])
    assert "needs at least 3 groups per class" in message and "(lesions, patients or duplicate clusters" in message
    assert "this dataset has at most 2 (MEL: 2, NV: 2)" in message
    paper = assign_splits(items, labels, groups=lesions, split_protocol="paper_4to1")
    assert all(paper[s] for s in SPLITS) and "split_shortfall" not in paper
    # an official test split leaves training and validation to the rest: 2 groups per class are needed there
    official = ["test"] * 3 + [None] * 3 + ["test"] * 3 + [None] * 3
    message = shortfall_message(assign_splits(items, labels, groups=lesions, official=official)["split_shortfall"])
    assert "needs at least 2 groups per class; the dataset's official test split is used as it is; this dataset " \
           "has at most 1 " in message  # fmt: skip


def test_split_option_errors():
    items = [{"image": str(k)} for k in range(10)]
    labels = [k % 2 for k in range(10)]
    with pytest.raises(ValueError, match="split_protocol"):
        assign_splits(items, labels, split_protocol="4to1")
    with pytest.raises(ValueError, match="both folds and fold"):
        assign_splits(items, labels, folds=3)
    with pytest.raises(ValueError, match="holdout"):
        assign_splits(items, labels, split_protocol="paper_4to1", folds=2, fold=0)
    with pytest.raises(ValueError, match="fold must be"):
        assign_splits(items, labels, folds=2, fold=2)
    with pytest.raises(ValueError, match="sum to less than 1"):
        assign_splits(items, labels, val_fraction=0.5, test_fraction=0.5)
    official = ["test"] + [None] * 9
    with pytest.raises(ValueError, match="straddle training and test"):  # an official test sharing a patient
        assign_splits(items, labels, groups=[0, 0] + list(range(1, 9)), official=official)
    with pytest.raises(ValueError, match="lacks the split"):
        check_disjoint_splits({"training": [], "validation": []})


@pytest.mark.parametrize(
    "index",
    [
        index_btc,
        index_busi,
        index_chestxray14,
        index_class_folders,
        index_covid_ct,
        index_csv,
        index_ham10000,
        index_isic2018,
        index_mosmed,
    ],
)
def test_misspelt_split_option_fails_before_the_dataset_is_read(index, tmp_path):
    # the split options travel as **split_options to assign_splits: the names are checked first, so the
    # missing folder is never reached
    with pytest.raises(TypeError, match=r"unknown split option\(s\) \['sed'\].*val_fraction"):
        index(tmp_path / "nowhere", sed=1)

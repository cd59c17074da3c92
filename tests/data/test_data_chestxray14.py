"""ChestX-ray14 indexer: Data_Entry_2017.csv, multi-hot labels, patient-level splits, official lists."""

import csv
import os
import shutil

import pytest

from monai_rd.data import CHESTXRAY14_FINDINGS, index_chestxray14, make_chestxray14_like


@pytest.fixture(scope="module")
def cxr(tmp_path_factory):
    return make_chestxray14_like(tmp_path_factory.mktemp("cxr"), n_patients=16, size=32, seed=0)


def _entries(root):
    with open(os.path.join(root, "Data_Entry_2017.csv"), newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    return {r[0]: dict(zip(header, r)) for r in rows[1:]}


def test_fabricated_header_is_the_release_header(cxr):
    with open(os.path.join(cxr, "Data_Entry_2017.csv")) as f:
        assert f.readline().rstrip("\n") == (
            "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
            "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
        )


def test_multi_hot_labels_official_lists_and_no_phi(cxr):
    entries = _entries(cxr)
    dl = index_chestxray14(cxr)
    assert dl["split"] == "official" and dl["classes"] == list(CHESTXRAY14_FINDINGS) and len(CHESTXRAY14_FINDINGS) == 14
    with open(os.path.join(cxr, "test_list.txt")) as f:
        listed = sorted(line.strip() for line in f if line.strip())
    assert sorted(os.path.basename(i["image"]) for i in dl["test"]) == listed
    items = dl["training"] + dl["validation"] + dl["test"]
    assert len(items) == len(entries)
    for item in items:
        row = entries[os.path.basename(item["image"])]
        findings = [] if row["Finding Labels"] == "No Finding" else row["Finding Labels"].split("|")
        assert item["label"] == [1 if f in findings else 0 for f in CHESTXRAY14_FINDINGS]
        assert set(item) == {"image", "label", "findings"}
    patient = lambda part: {entries[os.path.basename(i["image"])]["Patient ID"] for i in dl[part]}  # noqa: E731
    assert not patient("training") & patient("validation")
    assert not (patient("training") | patient("validation")) & patient("test")
    assert any(sum(i["label"]) == 2 for i in items) and any(sum(i["label"]) == 0 for i in items)
    text = str({k: v for k, v in dl.items()})
    assert "Patient" not in text and "'M'" not in text


def test_patient_split_without_lists(cxr, tmp_path):
    root = tmp_path / "nolists"
    shutil.copytree(cxr, root)
    os.remove(root / "train_val_list.txt")
    with pytest.raises(FileNotFoundError, match="needs both"):
        index_chestxray14(root)
    os.remove(root / "test_list.txt")
    entries = _entries(root)
    dl = index_chestxray14(root, seed=2)
    assert dl["split"] == "patient" and dl["test_split"] == "held-out"
    patient = lambda part: {entries[os.path.basename(i["image"])]["Patient ID"] for i in dl[part]}  # noqa: E731
    assert patient("validation") and not patient("training") & patient("validation")
    assert patient("test") and not (patient("training") | patient("validation")) & patient("test")


def test_malformed_chestxray14(cxr, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(cxr, root)
    csv_path = root / "Data_Entry_2017.csv"
    original = csv_path.read_text()
    lines = original.splitlines()
    row = lines[1].split(",")
    csv_path.write_text("\n".join([lines[0], ",".join([row[0], "Pneumonia|Covid"] + row[2:])] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match=r"unknown finding\(s\) \['Covid'\]"):
        index_chestxray14(root)
    csv_path.write_text("\n".join([lines[0], ",".join([row[0], "No Finding|Mass"] + row[2:])] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match="unknown finding"):
        index_chestxray14(root)
    csv_path.write_text(original.replace("Patient ID", "PatientID", 1))
    with pytest.raises(ValueError, match=r"lacks the columns \['Patient ID'\]"):
        index_chestxray14(root)
    csv_path.write_text(original)
    image = next((root / "images_001" / "images").iterdir())
    moved = tmp_path / image.name
    shutil.move(image, moved)
    with pytest.raises(FileNotFoundError, match=image.name):
        index_chestxray14(root)
    dl = index_chestxray14(root, require_all_images=False)
    assert dl["missing_images"] == 1
    shutil.move(moved, image)
    shutil.copyfile(image, root / "images_002" / "images" / "99999999_000.png")
    with pytest.raises(ValueError, match="have no row"):
        index_chestxray14(root)
    os.remove(root / "images_002" / "images" / "99999999_000.png")
    shutil.copyfile(image, root / "images_002" / "images" / image.name)
    with pytest.raises(ValueError, match="present twice"):
        index_chestxray14(root)

"""COVID-CT indexer on a fabricated repository ('%' and spaces in names, PNG+JPG, official split files)."""

import os
import shutil

import pytest

from monai_rd.data import COVID_CT_CLASSES, index_covid_ct, make_covid_ct_like


@pytest.fixture(scope="module")
def covid(tmp_path_factory):
    return make_covid_ct_like(tmp_path_factory.mktemp("covid"), n_per_class=10, size=32, seed=0)


def _listed(root, class_name, split):
    with open(os.path.join(root, "Data-split", class_name, f"{split}CT_{class_name}.txt")) as f:
        return sorted(line.strip() for line in f if line.strip())


def test_label_order_is_explicit():
    assert COVID_CT_CLASSES == ("NonCOVID", "COVID")


def test_official_split_reproduced_exactly(covid):
    dl = index_covid_ct(covid)
    assert dl["split"] == "official" and dl["classes"] == ["NonCOVID", "COVID"]
    for key, split in (("training", "train"), ("validation", "val"), ("test", "test")):
        for label, class_name in enumerate(("NonCOVID", "COVID")):
            got = sorted(os.path.basename(i["image"]) for i in dl[key] if i["label"] == label)
            assert got == _listed(covid, class_name, split)
            folder = {i["image"].split(os.sep)[-2] for i in dl[key] if i["label"] == label}
            assert folder == {f"CT_{class_name}"}
    names = [os.path.basename(i["image"]) for k in ("training", "validation", "test") for i in dl[k]]
    assert any("%" in n for n in names) and any(" " in n for n in names)
    assert {os.path.splitext(n)[1] for n in names} == {".png", ".jpg"}
    assert all(os.path.isfile(i["image"]) for k in ("training", "validation", "test") for i in dl[k])


def test_without_split_files_seeded_holdout(covid, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(covid, root)
    shutil.rmtree(root / "Data-split")
    dl = index_covid_ct(root)
    assert dl["split"] == "seeded" and dl["test_split"] == "held-out"
    assert len(dl["training"]) == 12 and len(dl["validation"]) == 4 and len(dl["test"]) == 4
    assert sorted(i["label"] for i in dl["validation"]) == sorted(i["label"] for i in dl["test"]) == [0, 0, 1, 1]
    assert index_covid_ct(covid, use_official_split=False)["split"] == "seeded"


def test_class_folders_directly_in_dataset_dir(covid, tmp_path):
    root = tmp_path / "flat"
    shutil.copytree(os.path.join(covid, "Images-processed"), root)
    assert index_covid_ct(root)["split"] == "seeded"
    assert index_covid_ct(root, split_dir=os.path.join(covid, "Data-split"))["split"] == "official"


def test_malformed_covid_ct(covid, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(covid, root)
    split = root / "Data-split" / "COVID" / "valCT_COVID.txt"
    original = split.read_text()
    split.write_text(original + "not there%1.png\r\n")
    with pytest.raises(ValueError, match="lists 'not there%1.png'"):
        index_covid_ct(root)
    first = original.splitlines()[0]
    split.write_text(original + first + "\n")
    with pytest.raises(ValueError, match="listed twice"):
        index_covid_ct(root)
    split.write_text("\n".join(original.splitlines()[1:]) + "\n")
    with pytest.raises(ValueError, match="in no split file"):
        index_covid_ct(root)
    os.remove(split)
    with pytest.raises(FileNotFoundError, match="Incomplete COVID-CT split files"):
        index_covid_ct(root)
    split.write_text(original)
    (root / "Images-processed" / "CT_NonCOVID" / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="readme.md"):
        index_covid_ct(root)
    os.remove(root / "Images-processed" / "CT_NonCOVID" / "readme.md")
    shutil.rmtree(root / "Images-processed" / "CT_NonCOVID")
    with pytest.raises(FileNotFoundError, match="CT_NonCOVID"):
        index_covid_ct(root)

"""``monai-rd index``: a datalist from a folder or CSV, a readable summary, a named error and exit code 2."""

from __future__ import annotations

import json

from monai_rd.cli import main


def test_index_folder(nifti_dir, tmp_path, capsys):
    out = tmp_path / "dl.json"
    assert main(["index", nifti_dir, "--out", str(out), "--slice_mode", "foreground"]) == 0
    text = capsys.readouterr().out
    assert "classes: ['lesion', 'normal']" in text and "training: 16 items from 4 groups" in text
    assert "validation: 8 items from 2 groups (lesion=4, normal=4)" in text
    assert "test: 8 items from 2 groups (lesion=4, normal=4)" in text and "split protocol: holdout" in text
    assert len(json.loads(out.read_text())["validation"]) == 8


def test_index_folds(nifti_dir, tmp_path, capsys):
    seen = []
    for fold in range(2):
        out = tmp_path / f"dl{fold}.json"
        assert main(["index", nifti_dir, "--out", str(out), "--folds", "2", "--fold", str(fold)]) == 0
        assert f"split protocol: holdout, fold {fold} of 2" in capsys.readouterr().out
        dl = json.loads(out.read_text())
        seen.append(({i["group"] for i in dl["validation"]}, {i["image"] for i in dl["test"]}))
    assert not seen[0][0] & seen[1][0] and seen[0][1] == seen[1][1]  # folds rotate, the test split stays


def test_index_reports_bad_input(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "stray.txt").write_text("x")
    assert main(["index", str(tmp_path / "d"), "--out", str(tmp_path / "dl.json")]) == 2
    assert "one folder per class" in capsys.readouterr().err
    assert not (tmp_path / "dl.json").exists()

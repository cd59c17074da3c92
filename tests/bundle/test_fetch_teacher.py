"""`monai-rd fetch-teacher` (bundle/fetch.py): only the teacher a run needs, from the bundle's large_files.yml, with
a progress bar; offline (a refused host, a missing file:// source) it ends with one line saying where to put the
file by hand. No network: file:// urls and 127.0.0.1:9 (nothing listens there)."""

import json
import os
import shutil

import pytest
import torch

from monai_rd.bundle import bundle_names, bundle_root
from monai_rd.bundle.fetch import TEACHER_FILES, bundle_teacher, large_files, teacher_entry
from monai_rd.cli import main


@pytest.fixture
def bundle(tmp_path):
    """A copy of rd_busi whose large_files.yml lists PMC-CLIP at a file:// url and LVM-Med at a refused host."""
    source = tmp_path / "published.pt"
    torch.save({"w": torch.ones(3)}, source)
    copy = tmp_path / "rd_busi"
    shutil.copytree(bundle_root("rd_busi"), copy, ignore=shutil.ignore_patterns("outputs", "models", "eval"))
    entries = [{"path": "models/pmc_clip_checkpoint.pt", "url": f"file://{source}"},
               {"path": "models/lvmmed_resnet.torch", "url": "http://127.0.0.1:9/lvmmed_resnet.torch"}]  # fmt: skip
    (copy / "large_files.yml").write_text(json.dumps({"large_files": entries}))  # JSON is YAML
    return copy


def test_fetches_only_the_teacher_the_run_needs(bundle, capsys):
    assert main(["fetch-teacher", str(bundle)]) == 0  # the bundle's own teacher: pmc_clip_rn50
    target = bundle / "models" / "pmc_clip_checkpoint.pt"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(target)
    assert sorted(os.listdir(bundle / "models")) == ["pmc_clip_checkpoint.pt"]  # not the other teacher
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(3))
    mtime = os.path.getmtime(target)
    assert main(["fetch-teacher", str(bundle), "--no_progress"]) == 0 and os.path.getmtime(target) == mtime


@pytest.mark.parametrize("where", ["refused host", "missing file:// source"])
def test_offline_it_ends_with_where_to_put_the_file(bundle, tmp_path, capsys, where):
    teacher = "lvmmed_resnet50"
    if where != "refused host":
        teacher = "pmc_clip_rn50"
        os.remove(tmp_path / "published.pt")
    assert main(["fetch-teacher", str(bundle), "--teacher", teacher, "--no_progress"]) == 1
    err = capsys.readouterr().err
    file = TEACHER_FILES[teacher]
    assert err.rstrip().splitlines()[-1].startswith("Put the file there by hand: save ")
    assert f" as {bundle / 'models' / file} (or pass --teacher_weights <file>" in err.rstrip().splitlines()[-1]
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 4, err
    assert not (bundle / "models" / file).exists()


def test_every_bundles_teacher_has_its_large_files_entry(bundle, capsys):
    for name in bundle_names():
        root = bundle_root(name)
        teacher = bundle_teacher(root)
        assert teacher_entry(root, teacher)["path"] == f"models/{TEACHER_FILES[teacher]}", name
        for entry in large_files(root):  # every listed file belongs to a teacher of the table
            assert os.path.basename(entry["path"]) in TEACHER_FILES.values(), (name, entry)
    assert main(["fetch-teacher", str(bundle), "--teacher", "radimagenet_resnet50"]) == 1
    assert "lists no file for teacher 'radimagenet_resnet50'" in capsys.readouterr().err

"""Teacher weights: MONAI's download_large_files, the hf-hub:/imagenet/random/file sources, and runs that stop
before anything else when the teacher's file is missing. Nothing is downloaded: file:// URLs and pre-populated
Hugging Face / torch hub caches exercise the real library code paths."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torchvision

from monai_rd.networks import (
    MissingWeightsError,
    RandomTeacherWarning,
    StudentClassifier,
    WeightsSourceError,
    build_teacher,
    check_teacher_weights,
    resolve_weights,
)
from tests.helpers.forkserver import run as run_python
from tests.conftest import BUNDLES, REPO, run_bundle
from monai_rd.bundle import bundle_names
from tests.helpers.weights import random_resnet18_state

DATASET_BUNDLES = bundle_names()  # every bundle (monai_rd.bundle.bundle_names)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _resnet18_state(seed: int = 0) -> dict:
    return random_resnet18_state(seed)


def _reference_features(state: dict, x: torch.Tensor) -> torch.Tensor:
    """torchvision ResNet-18 with ``state``, classifier removed, on ImageNet-normalised ``x`` (independent path)."""
    model = torchvision.models.resnet18()
    model.load_state_dict(state)
    model.fc = torch.nn.Identity()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return model.eval()((x - mean) / std)


# --------------------------------------------------------------------------------------- sources, in process
def test_local_file_record_and_features(tmp_path):
    state = _resnet18_state(1)
    path = tmp_path / "r18.pt"
    torch.save(state, path)
    teacher = build_teacher("torchvision:resnet18", weights=str(path))
    assert teacher.weights_record.source == "file" and teacher.weights_record.sha256 == _sha256(path)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(teacher(x), _reference_features(state, x), atol=1e-5, rtol=1e-5)


def test_none_is_never_silently_random():
    with pytest.warns(RandomTeacherWarning, match="RANDOM teacher"):
        build_teacher("torchvision:resnet18")
    with pytest.raises(WeightsSourceError, match="'random'"):
        resolve_weights("torchvision:resnet18", None)
    with pytest.raises(MissingWeightsError, match="teacher_weights is not set") as err:
        check_teacher_weights("pmc_clip_rn50", None, os.path.join(BUNDLES, "rd_busi"))
    assert "download_large_files --bundle_path" in str(err.value) and "--teacher_weights" in str(err.value)
    assert f"monai-rd fetch-teacher {os.path.join(BUNDLES, 'rd_busi')} --teacher pmc_clip_rn50" in str(err.value)
    record = check_teacher_weights("torchvision:resnet18", "random")
    assert record.source == "random" and record.sha256 == "random-init"
    assert check_teacher_weights("pmc_clip_rn50", None, needed=False).source == "unused"


def test_imagenet_only_for_torchvision_and_timm():
    with pytest.raises(WeightsSourceError, match="not for 'pmc_clip_rn50'"):
        resolve_weights("pmc_clip_rn50", "imagenet")


def test_imagenet_from_a_prepopulated_torch_hub_cache(tmp_path, monkeypatch):
    """``imagenet`` goes through torchvision's weight enum and torch hub cache (TORCH_HOME): the file is found
    under the exact name torchvision expects, and the teacher equals torchvision's model with that state."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    cached = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(url)
    cached.parent.mkdir(parents=True)
    state = _resnet18_state(2)
    torch.save(state, cached)
    teacher = build_teacher("torchvision:resnet18", weights="imagenet")
    record = teacher.weights_record
    assert record.source == "imagenet" and record.path == str(cached) and record.sha256 == _sha256(cached)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(teacher(x), _reference_features(state, x), atol=1e-5, rtol=1e-5)
    student = StudentClassifier("resnet18", 3, weights="imagenet").eval()  # students take the same source
    torch.testing.assert_close(student.features(x), _reference_features(state, x), atol=1e-5, rtol=1e-5)
    assert student.backbone.weights_record.sha256 == record.sha256
    cached.unlink()  # nothing cached and (here) nothing reachable: a clear error, not a random teacher
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError, match="torch hub cache"):
        resolve_weights("torchvision:resnet18", "imagenet")


HF_SCRIPT = r"""
import json, sys, torch
from monai_rd.networks import build_teacher, MissingWeightsError
out = {}
for spec in sys.argv[1:-1]:
    t = build_teacher("torchvision:resnet18", weights=spec)
    out[spec] = {**t.weights_record.as_dict(), "features": t(torch.load(sys.argv[-1])).tolist()}
try:
    build_teacher("torchvision:resnet18", weights="hf-hub:acme/tiny-teacher/absent.pt")
except MissingWeightsError as e:
    out["missing"] = str(e)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_hf_hub_from_a_prepopulated_cache_offline(tmp_path):
    """``hf-hub:<org>/<repo>/<file>[@rev]`` through huggingface_hub's own download code, HF_HUB_OFFLINE=1."""
    repo = tmp_path / "hf" / "models--acme--tiny-teacher"
    snapshot = repo / "snapshots" / COMMIT / "weights"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    state = _resnet18_state(3)
    torch.save(state, snapshot / "resnet18.pt")
    x = torch.rand(2, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    pinned = f"hf-hub:acme/tiny-teacher/weights/resnet18.pt@{COMMIT}"
    main = "hf-hub:acme/tiny-teacher/weights/resnet18.pt"
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, "-c", HF_SCRIPT, pinned, main, str(tmp_path / "x.pt")],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    reference = _reference_features(state, x)
    for spec in (pinned, main):
        assert out[spec]["source"] == "hf-hub" and out[spec]["sha256"] == _sha256(snapshot / "resnet18.pt")
        assert os.path.realpath(out[spec]["path"]) == os.path.realpath(snapshot / "resnet18.pt")
        torch.testing.assert_close(torch.tensor(out[spec]["features"]), reference, atol=1e-5, rtol=1e-5)
    assert "absent.pt" in out["missing"] and "acme/tiny-teacher" in out["missing"]


# ------------------------------------------------------------------------------------------------ bundles
#: each bundle's default teacher and its file under models/ (the first large_files.yml entry): the paper's PMC-CLIP,
#: and for the 3D bundle MONAI's self-supervised Swin UNETR encoder
DEFAULT_TEACHER = {"rd_mosmed": ("swin_unetr_ssl", "model_swinvit.pt")}
PAPER_TEACHER = ("pmc_clip_rn50", "pmc_clip_checkpoint.pt")


@pytest.mark.parametrize("bundle", DATASET_BUNDLES)
def test_every_bundle_defaults_to_a_paper_teacher_file_under_models(bundle):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(os.path.join(BUNDLES, bundle, "configs", "train.json"))
    teacher, file = DEFAULT_TEACHER.get(bundle, PAPER_TEACHER)
    assert parser.get_parsed_content("teacher") == teacher and parser["student_weights"] == "none"
    if bundle == "rd_clinical":  # its 3D mode applies the same PMC-CLIP file slice by slice
        parser["spatial_dims"] = 3
        assert parser.get_parsed_content("teacher", lazy=False) == "slicewise:pmc_clip_rn50"
    expected = os.path.join(BUNDLES, bundle, "models", file)
    assert os.path.normpath(parser.get_parsed_content("teacher_weights")) == expected
    large = ConfigParser.load_config_file(os.path.join(BUNDLES, bundle, "large_files.yml"))["large_files"]
    assert large[0]["path"] == f"models/{file}"
    assert all(f["url"].startswith("https://") and "hash_val" not in f for f in large)  # no author publishes one


@pytest.mark.parametrize("bundle", DATASET_BUNDLES)
def test_missing_teacher_file_stops_before_anything_runs(bundle, tmp_path):
    """MONAI's own workflow initialisation stops on the missing default file; nothing is written."""
    from monai.bundle import ConfigWorkflow

    out = tmp_path / "out"
    workflow = ConfigWorkflow(
        config_file=os.path.join(BUNDLES, bundle, "configs", "train.json"), workflow_type="train",
        dataset_dir=str(tmp_path), output_dir=str(out), bundle_root=str(tmp_path / bundle),
    )  # fmt: skip
    with pytest.raises(Exception) as err:
        workflow.initialize()
    chain, e = [], err.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    missing = [e for e in chain if isinstance(e, MissingWeightsError)]
    assert missing, [type(e).__name__ for e in chain]
    text = str(missing[0])
    file = DEFAULT_TEACHER.get(bundle, PAPER_TEACHER)[1]
    assert os.path.join(str(tmp_path / bundle), "models", file) in text
    assert "download_large_files --bundle_path" in text and "--teacher_weights" in text
    assert not out.exists()


@pytest.mark.slow
def test_missing_teacher_file_exits_non_zero_writing_nothing(busi_dir, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
           os.path.join(BUNDLES, "rd_busi", "configs", "train.json"), "--dataset_dir", busi_dir, "--output_dir", str(out),
           "--bundle_root", str(tmp_path / "rd_busi")]  # fmt: skip
    proc = run_python(cmd, timeout=600, cwd=str(tmp_path),
                      env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode != 0
    assert "MissingWeightsError" in proc.stderr and "download_large_files" in proc.stderr
    assert not out.exists() and sorted(os.listdir(tmp_path)) == []


def _pmc_clip_checkpoint(path) -> str:
    """A PMC-CLIP ``checkpoint.pt`` in the released layout (``{"state_dict": {"module.visual.*": ...}}``)."""
    from monai_rd.networks.zoo.pmc_clip import ModifiedResNet

    torch.manual_seed(0)
    visual = ModifiedResNet([3, 4, 6, 3], output_dim=768, heads=32, image_size=224, width=64)
    state = {f"module.visual.{k}": v for k, v in visual.state_dict().items()}
    state["module.logit_scale"] = torch.tensor(2.659)
    torch.save({"epoch": 1, "state_dict": state}, path)
    return str(path)


def _bundle_copy(tmp_path, source_file, hash_val=None):
    """A copy of rd_busi whose large_files.yml points at ``source_file`` by a file:// URL."""
    copy = tmp_path / "rd_busi"
    ignore = shutil.ignore_patterns("outputs", "models", "eval")
    shutil.copytree(os.path.join(BUNDLES, "rd_busi"), copy, ignore=ignore)
    entry = {"path": "models/pmc_clip_checkpoint.pt", "url": f"file://{source_file}"}
    if hash_val is not None:
        entry.update(hash_val=hash_val, hash_type="sha256")
    (copy / "large_files.yml").write_text(json.dumps({"large_files": [entry]}))  # JSON is YAML
    return copy


def _download(copy) -> subprocess.CompletedProcess:
    return run_python([sys.executable, "-m", "monai.bundle", "download_large_files", "--bundle_path", str(copy)],
                      timeout=300)  # fmt: skip


@pytest.mark.slow
def test_download_large_files_wrong_hash_leaves_no_file(tmp_path):
    source = tmp_path / "published.pt"
    torch.save({"w": torch.ones(3)}, source)
    copy = _bundle_copy(tmp_path, source, hash_val="0" * 64)
    proc = _download(copy)
    assert proc.returncode != 0
    assert "hash check of downloaded file failed" in proc.stderr and "pmc_clip_checkpoint.pt" in proc.stderr
    assert not (copy / "models").exists() or os.listdir(copy / "models") == []


@pytest.mark.slow
def test_download_large_files_then_the_bundle_trains_with_that_teacher(busi_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    source = _pmc_clip_checkpoint(tmp_path / "checkpoint.pt")
    copy = _bundle_copy(tmp_path, source, hash_val=_sha256(source))
    proc = _download(copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fetched = copy / "models" / "pmc_clip_checkpoint.pt"
    assert _sha256(fetched) == _sha256(source)
    out = tmp_path / "out"
    run_bundle(str(copy / "configs" / "train.json"), bundle_root=copy, dataset_dir=busi_dir, output_dir=out,
               max_epochs=1, image_size=32, batch_size=8, num_workers=0, progress_bar=False)  # fmt: skip
    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlruns.db")
    run = client.search_runs([client.get_experiment_by_name("rd_busi").experiment_id])[0]
    params, tags = run.data.params, run.data.tags
    assert params["teacher"] == "pmc_clip_rn50" and params["teacher_weights_source"] == "file"
    assert params["teacher_weights_sha256"] == _sha256(fetched) == tags["teacher_weights_sha256"]
    assert params["teacher_feature_shape"] == "[2048]"
    model = client.get_model_version_by_alias("rd_busi_student", "champion")
    assert model.tags["teacher_weights_sha256"] == _sha256(fetched)
    assert model.tags["teacher_weights_source"] == "file" and model.tags["teacher_feature_shape"] == "[2048]"
    assert "WARNING" not in open(out / "report" / "classification_report.md").read()

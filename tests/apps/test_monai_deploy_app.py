"""The MONAI Deploy app (apps/monai_deploy) on a real DICOM series: JSON result = model.pt, DICOM SR written.

The SDK (monai-deploy-app-sdk, holoscan) lives in a venv of its own, built by ``apps/monai_deploy/install.sh``;
``MONAI_RD_DEPLOY_VENV`` points at it (``.ci/run`` sets it). The app runs there as a user runs it; the expected
probabilities come from this environment: ``model.pt`` through the run's own preprocessing, the middle slice
loaded by monai_rd's DICOM reader. Without the venv the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pydicom
import pytest
import torch

from monai_rd.bundle import write_executed_config
from monai_rd.data.synthetic import write_dicom_series
from monai_rd.deploy import export_run_serving
from monai_rd.networks import StudentClassifier
from tests.helpers.servers import venv_python_or_skip
from tests.conftest import BUNDLES, REPO

APP = os.path.join(REPO, "apps", "monai_deploy")
VENV = os.environ.get("MONAI_RD_DEPLOY_VENV", "")
CLASSES = ["normal", "lesion"]
SIZE = 32

pytestmark = pytest.mark.slow


def test_app_classifies_a_dicom_series_like_model_pt(tmp_path):
    python = venv_python_or_skip(
        VENV,
        "import monai.deploy.core, highdicom",
        "build it with apps/monai_deploy/install.sh <venv>, set MONAI_RD_DEPLOY_VENV",
    )
    from monai.bundle import ConfigParser
    from monai.transforms import Compose, LoadImaged

    from monai_rd.data import MedicalImageReader

    # a finished rd_clinical-style run: a student, its executed config and datalist (class names)
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    model = StudentClassifier("mobilenet_v3_small", len(CLASSES)).eval()
    torch.save(model.state_dict(), run / "model.pt")
    write_executed_config(
        os.path.join(BUNDLES, "rd_clinical", "configs", "train.json"),
        {"student": "mobilenet_v3_small", "teacher": "resnet50", "image_size": SIZE},
        run / "executed_config.json",
    )
    (run / "datalist.json").write_text(json.dumps({"classes": CLASSES}))
    serving = export_run_serving(run, tmp_path / "serving")

    # a study folder: pydicom's real CT_small.dcm copied as a 5-slice series (shuffled file names)
    study = tmp_path / "study"
    write_dicom_series(study / "series", n_slices=5, size=48, lesion=True, seed=1)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the app needs nothing of this checkout
    proc = subprocess.run(
        [python, os.path.join(APP, "app.py"), "-i", str(study), "-o", str(out), "-m", serving],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    result = json.loads((out / "result.json").read_text())
    # expected: the middle slice by z, monai_rd's reader, the run's own validate::preprocessing, model.pt
    files = sorted(study.rglob("*.dcm"))
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    middle = files[int(np.argsort(z)[len(z) // 2])]
    parser = ConfigParser()
    parser.read_config(str(run / "executed_config.json"))
    pre = parser.get_parsed_content("validate::preprocessing").transforms
    load = LoadImaged("image", reader=MedicalImageReader(), image_only=True, ensure_channel_first=True)
    keep = [t for t in pre if type(t).__name__ not in ("LoadImaged", "ExtractSliced")]
    x = Compose([load, *keep])({"image": str(middle), "label": 0})["image"]
    with torch.no_grad():
        expected = torch.softmax(model(torch.as_tensor(x)[None].float()), 1)[0].numpy()
    got = np.array([result["probabilities"][c] for c in CLASSES])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert result["label"] == CLASSES[int(np.argmax(expected))] and result["slices_in_series"] == 5
    assert result["sop_instance_uid"] == str(pydicom.dcmread(middle).SOPInstanceUID)

    # the DICOM SR: a real SR instance of the same study, stating the prediction
    srs = [f for f in out.iterdir() if f.suffix == ".dcm"]
    assert len(srs) == 1, sorted(os.listdir(out))
    sr = pydicom.dcmread(srs[0])
    source = pydicom.dcmread(middle)
    assert sr.Modality == "SR" and sr.StudyInstanceUID == source.StudyInstanceUID
    assert f"Predicted class: {result['label']}" in str(sr.ContentSequence[0].TextValue)

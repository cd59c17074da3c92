"""The MONAI Label round trip: a real server, in the MONAI Label venv, serving a packaged RD run (PNG and DICOM).

MONAI Label lives in a venv of its own (``monailabel`` pins numpy<2 and pydicom<3), built with the command of
``docs/export.md``; ``.ci/run`` builds it (cached) and sets ``MONAI_RD_LABEL_VENV``. The server runs there and needs
no ``monai_rd``: it serves the packaged bundle's ``serving/`` folder. Expected probabilities come from this (core)
environment: the run's ``model.pt`` through the bundle's own pipeline. Without the venv the test is skipped,
except under CI (``CI`` set), where a missing venv is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.request
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from monai_rd.bundle import write_executed_config
from monai_rd.deploy.label import prepare_label_bundle
from monai_rd.networks import StudentClassifier
from tests.helpers.servers import venv_python_or_skip, wait_until_up
from tests.conftest import BUNDLES, REPO

APP = os.path.join(REPO, "apps", "monailabel")
BUNDLE = os.path.join(BUNDLES, "rd_busi")
CLASSES = ["benign", "malignant", "normal"]
STUDENT = "mobilenet_v3_small"
SIZE = 32
VENV = os.environ.get("MONAI_RD_LABEL_VENV", "")
MONAILABEL = os.path.join(VENV, "bin", "monailabel")

pytestmark = pytest.mark.slow


@pytest.fixture
def packaged(tmp_path):
    """A finished run (model.pt + executed_config.json) packaged with ``monai-rd label-bundle``'s function."""
    out = tmp_path / "run"
    out.mkdir()
    torch.manual_seed(0)
    model = StudentClassifier(STUDENT, len(CLASSES)).eval()
    torch.save(model.state_dict(), out / "model.pt")
    write_executed_config(
        os.path.join(BUNDLE, "configs", "train.json"),
        {"student": STUDENT, "teacher": "resnet50", "image_size": SIZE, "max_epochs": 1},
        out / "executed_config.json",
    )
    dest = prepare_label_bundle(BUNDLE, out, tmp_path / "app_model" / "rd_busi")
    return dest, out, model


def _expected(run_dir, model, path, dicom=False) -> np.ndarray:
    """model.pt through the run's own validate::preprocessing (the DICOM with monai_rd's DICOM reader)."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose, LoadImaged

    from monai_rd.data import MedicalImageReader

    parser = ConfigParser()
    parser.read_config(os.path.join(run_dir, "executed_config.json"))
    pre = parser.get_parsed_content("validate::preprocessing")
    if dicom:
        load = LoadImaged("image", reader=MedicalImageReader(), image_only=True, ensure_channel_first=True)
        pre = Compose([load, *pre.transforms[1:]])
    x = pre({"image": str(path), "label": 0})["image"]
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(x)[None].float()), 1)[0].numpy()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_file(url: str, path: str) -> dict:
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        data = f.read()
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{{"device": "cpu"}}\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{os.path.basename(path)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    req = urllib.request.Request(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=180) as r:
        return json.loads(r.read())


def _scores(result: dict) -> np.ndarray:
    prediction = result["prediction"]
    assert [p["label"] for p in prediction] == CLASSES and [p["idx"] for p in prediction] == [0, 1, 2]
    return np.array([p["score"] for p in prediction])


def test_server_in_its_own_venv_serves_png_and_dicom_like_model_pt(packaged, tmp_path):
    venv_python_or_skip(
        VENV,
        "import monailabel.app",
        "build it with apps/monailabel/install.sh <venv>, set MONAI_RD_LABEL_VENV (.ci/run does)",
    )
    from pydicom.data import get_testdata_file

    bundle, run_dir, model = packaged
    studies = tmp_path / "studies"
    studies.mkdir()
    rng = np.random.default_rng(0)
    png = studies / "case_1.png"
    Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8)).save(png)
    dcm = studies / "ct_1.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), dcm)

    port = _free_port()
    log_path = tmp_path / "server.log"
    # the venv's own interpreter and nothing of this checkout: PYTHONPATH cleared, started from elsewhere
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        {
            "MONAILABEL_PYEXE": os.path.join(VENV, "bin", "python"),
            "MONAI_LABEL_TASKS_TRAIN": "false",
            "PATH": os.path.join(VENV, "bin") + os.pathsep + env.get("PATH", ""),
        }
    )
    cmd = [
        MONAILABEL,
        "start_server",
        "--app",
        APP,
        "--studies",
        str(studies),
        "--conf",
        "bundle",
        bundle,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        info = json.loads(wait_until_up(f"{base}/info/", server, log_path, timeout=300))
        model_info = info["models"]["rd_busi"]
        assert model_info["type"] == "classification" and model_info["labels"] == {c: i for i, c in enumerate(CLASSES)}
        probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('monai_rd') is not None)"
        assert (
            subprocess.run([os.path.join(VENV, "bin", "python"), "-c", probe], env=env, cwd=tmp_path).returncode == 0
        ), "monai_rd is importable in the MONAI Label venv: the app must serve without it"

        # uploaded PNG and DICOM files
        for path, dicom in ((png, False), (dcm, True)):
            result = _post_file(f"{base}/infer/rd_busi?output=json", str(path))
            scores = _scores(result)
            np.testing.assert_allclose(scores, _expected(run_dir, model, path, dicom), rtol=0, atol=1e-5)
            assert result["label"] == CLASSES[int(np.argmax(scores))]
        # the DICOM study as a datastore image (the studies folder lists *.dcm)
        with urllib.request.urlopen(f"{base}/datastore/?output=all", timeout=30) as r:
            listed = json.loads(r.read())
        assert {"case_1", "ct_1"} <= set(listed["objects"]), listed
        req = urllib.request.Request(f"{base}/infer/rd_busi?image=ct_1&output=json", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=180) as r:
            np.testing.assert_allclose(_scores(json.loads(r.read())), _expected(run_dir, model, dcm, True), atol=1e-5)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=20)

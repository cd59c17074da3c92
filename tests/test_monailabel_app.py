"""The MONAI Label app round trip: a real server serving a trained RD bundle, and RD training through the app.

These tests need ``monailabel`` (optional extra ``label``, installed in its own environment because it pins
numpy<2): run them with ``apps/monailabel/run_tests.sh``. They are skipped, with that reason, elsewhere; the
app-independent parts (packaging the bundle, class labels) are tested in ``test_label.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from monai_rd.deploy.label import prepare_label_bundle
from monai_rd.networks import StudentClassifier
from tests.conftest import BUNDLES, REPO, run_bundle

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("monailabel") is None,
    reason="monailabel is not installed in this interpreter (it needs numpy<2): run apps/monailabel/run_tests.sh, "
    "which uses its own venv",
)

APP = os.path.join(REPO, "apps", "monailabel")
BUNDLE = os.path.join(BUNDLES, "rd_busi")
CLASSES = ["benign", "malignant", "normal"]
STUDENT = "mobilenet_v3_small"
SIZE = 32


@pytest.fixture(scope="module")
def served_bundle(busi_dir, tmp_path_factory):
    """Train the real rd_busi bundle for one epoch on fabricated BUSI data; package it for MONAI Label."""
    out = str(tmp_path_factory.mktemp("rd_run"))
    run_bundle(os.path.join(BUNDLE, "configs", "train.json"), dataset_dir=busi_dir, output_dir=out, max_epochs=1,
               image_size=SIZE, batch_size=8, num_workers=0, progress_bar=False, teacher="resnet50",
               teacher_weights="random", student=STUDENT)
    return prepare_label_bundle(BUNDLE, out, tmp_path_factory.mktemp("app_model") / "rd_busi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expected_probs(bundle: str, image_path: str) -> np.ndarray:
    """Independent of MONAI Label and MONAI transforms: PIL decode, [0, 1], the eager student, softmax."""
    model = StudentClassifier(STUDENT, len(CLASSES))
    model.load_state_dict(torch.load(os.path.join(bundle, "models", "model.pt"), weights_only=True))
    image = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32) / 255.0
    with torch.no_grad():
        return torch.softmax(model.eval()(torch.from_numpy(image).permute(2, 0, 1)[None]), dim=1)[0].numpy()


def test_server_serves_rd_bundle(served_bundle, busi_dir, tmp_path):
    import requests

    studies = tmp_path / "studies"
    studies.mkdir()
    images = sorted(os.path.join(busi_dir, "malignant", f) for f in os.listdir(os.path.join(busi_dir, "malignant"))
                    if f.endswith(").png"))[:2]
    for p in images:
        shutil.copy(p, studies / os.path.basename(p).replace(" ", "_"))
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", APP,
           "--studies", str(studies), "--conf", "bundle", served_bundle, "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MONAI_LABEL_TASKS_TRAIN": "true", "MONAILABEL_PYEXE": sys.executable,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        info = None
        while time.monotonic() < deadline:
            if server.poll() is not None:
                break
            try:
                r = requests.get(f"{base}/info/", timeout=5)
                if r.status_code == 200:
                    info = r.json()
                    break
            except requests.ConnectionError:
                pass
            time.sleep(2)
        assert info is not None, f"server did not come up:\n{open(tmp_path / 'server.log').read()[-5000:]}"
        model = info["models"]["rd_busi"]
        assert model["type"] == "classification"
        assert model["labels"] == {c: i for i, c in enumerate(CLASSES)}
        assert "rd_busi" in info.get("trainers", {})

        with open(images[0], "rb") as f:
            r = requests.post(f"{base}/infer/rd_busi", params={"output": "json"},
                              files={"file": (os.path.basename(images[0]), f, "image/png")},
                              data={"params": json.dumps({"device": "cpu"})}, timeout=180)
        assert r.status_code == 200, r.text[-3000:]
        prediction = r.json()["prediction"]
        assert [p["label"] for p in prediction] == CLASSES and [p["idx"] for p in prediction] == [0, 1, 2]
        scores = np.array([p["score"] for p in prediction])
        np.testing.assert_allclose(scores, _expected_probs(served_bundle, images[0]), atol=1e-4)
        assert abs(scores.sum() - 1.0) < 1e-4
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=20)
        log.close()


def test_train_task_runs_rd_and_updates_served_model(served_bundle, busi_dir, tmp_path):
    from monailabel.datastore.local import LocalDatastore

    sys.path.insert(0, APP)
    try:
        from lib import RDClassificationInfer, RDTrainTask
    finally:
        sys.path.remove(APP)
    bundle = shutil.copytree(served_bundle, tmp_path / "rd_busi")
    studies = tmp_path / "studies"
    studies.mkdir()
    for cls in CLASSES:
        for name in sorted(f for f in os.listdir(os.path.join(busi_dir, cls)) if f.endswith(").png"))[:4]:
            shutil.copy(os.path.join(busi_dir, cls, name), studies / name.replace(" ", "_").replace("(", "").replace(")", ""))
    datastore = LocalDatastore(str(studies), extensions=("*.png",), auto_reload=False)
    for image_id in datastore.list_images():
        label_file = tmp_path / f"{image_id}.txt"
        label_file.write_text(image_id.split("_")[0])  # the class name, as a user would record it
        datastore.save_label(image_id, str(label_file), "final", {})
    before = open(os.path.join(bundle, "models", "model.pt"), "rb").read()

    conf = {"rd_image_size": str(SIZE), "rd_batch_size": "4", "rd_num_workers": "0"}
    task = RDTrainTask(str(bundle), conf)
    assert task.is_valid() and task.class_names == CLASSES
    task({"model": "rd_busi", "max_epochs": 1, "device": "cpu", "val_split": 0.25, "multi_gpu": False,
          "pretrained": True, "tracking": "None"}, datastore)
    datalist = json.load(open(os.path.join(bundle, "outputs", "datalist.json")))
    assert len(datalist["training"]) == 9 and len(datalist["validation"]) == 3
    assert sorted(d["label"] for d in datalist["validation"]) == [0, 1, 2]
    after = open(os.path.join(bundle, "models", "model.pt"), "rb").read()
    assert after != before  # the newly trained student is what the bundle now serves

    infer = RDClassificationInfer(str(bundle), {})
    assert infer.is_valid() and infer.labels == {c: i for i, c in enumerate(CLASSES)}
    image = sorted(str(p) for p in studies.glob("*.png"))[0]
    _, result = infer({"image": image, "device": "cpu"})
    scores = np.array([p["score"] for p in result["prediction"]])
    np.testing.assert_allclose(scores, _expected_probs(str(bundle), image), atol=1e-4)

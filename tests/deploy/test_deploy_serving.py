"""Serving folders, the MLflow pyfunc student and a real ``mlflow models serve``, against the eager model.pt."""

import base64
import importlib
import json
import os
import socket
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import torch
import torch.nn as nn
from monai.transforms import (
    Compose,
    EnsureTyped,
    LoadImaged,
    RandFlipd,
    Resized,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
)
from PIL import Image

from monai_rd.deploy import PyfuncServing, export_serving, serving_requirements, serving_transforms
from monai_rd.deploy.runtime import ServingModel, decode_image, images_from_input
from monai_rd.networks import FeatureBackbone, StudentClassifier
from monai_rd.transforms import EnsureRGBd
from tests.helpers.servers import wait_until_up

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

CLASSES = ["benign", "malignant", "normal"]
SIZE = 32


def tiny_student(seed: int = 0) -> StudentClassifier:
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return StudentClassifier(FeatureBackbone(body, name="tiny"), num_classes=len(CLASSES)).eval()


def png_preprocessing():
    """rd_busi's validate::preprocessing (PNG bundles)."""
    return Compose(
        [
            LoadImaged("image", reader="PILReader", reverse_indexing=False, image_only=True, ensure_channel_first=True),
            EnsureRGBd("image"),
            ScaleIntensityRanged("image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
            Resized("image", (SIZE, SIZE), mode="bilinear"),
            EnsureTyped(["image", "label"]),
        ]
    )


def dicom_preprocessing():
    """rd_clinical's preprocessing: monai_rd's medical reader, percentiles, RGB, resize."""
    from monai_rd.data import MedicalImageReader

    return Compose(
        [
            LoadImaged("image", reader=MedicalImageReader(), image_only=True, ensure_channel_first=True),
            ScaleIntensityRangePercentilesd("image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
            EnsureRGBd("image"),
            Resized("image", (SIZE, SIZE), mode="bilinear"),
        ]
    )


def reference_probs(model, preprocessing, path) -> np.ndarray:
    """The bundle's own pipeline on the file + the eager student: what model.pt predicts."""
    x = preprocessing({"image": str(path), "label": 0})["image"]
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(x)[None].float()), 1).numpy()[0]


@pytest.fixture
def png_file(tmp_path):
    rng = np.random.default_rng(1)
    arr = (rng.random((45, 57)) * 255).astype(np.uint8)  # greyscale, not square, not SIZE
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    return path


def test_serving_transforms_drop_loader_and_restrict_keys():
    ts = serving_transforms(png_preprocessing())
    assert [type(t).__name__ for t in ts] == ["EnsureRGBd", "ScaleIntensityRanged", "Resized", "EnsureTyped"]
    assert all(tuple(t.keys) == ("image",) for t in ts)
    with pytest.raises(ValueError, match="RandFlipd is random"):
        serving_transforms(Compose([RandFlipd("image", prob=0.5)]))


def test_serving_folder_predicts_png_and_dicom_like_the_bundle(tmp_path, png_file):
    model = tiny_student()
    dest = export_serving(model, png_preprocessing(), CLASSES, SIZE, tmp_path / "serving")
    served = ServingModel(dest)
    assert served.class_names == CLASSES and json.loads((tmp_path / "serving" / "serving.json").read_text())
    png = png_file.read_bytes()
    got = served.predict_proba([base64.b64encode(png).decode()])[0]
    np.testing.assert_allclose(got, reference_probs(model, png_preprocessing(), png_file), rtol=0, atol=1e-6)
    res = served.predict([png])[0]
    assert res["label"] == CLASSES[int(np.argmax(got))] and list(res["probabilities"]) == CLASSES

    # DICOM: the runtime's pydicom decode must equal monai_rd's DICOM reader on real scanner files
    dcm = get_testdata_file("CT_small.dcm")
    dest = export_serving(model, dicom_preprocessing(), CLASSES, SIZE, tmp_path / "serving_dcm")
    served = ServingModel(dest)
    with open(dcm, "rb") as f:
        got = served.predict_proba([base64.b64encode(f.read()).decode()])[0]
    np.testing.assert_allclose(got, reference_probs(model, dicom_preprocessing(), dcm), rtol=0, atol=1e-6)


def test_decoders_match_the_readers_on_real_files():
    from monai.transforms import LoadImage

    from monai_rd.data import MedicalImageReader

    load = LoadImage(reader=MedicalImageReader(), image_only=True, ensure_channel_first=True)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = get_testdata_file(name)
        with open(path, "rb") as f:
            np.testing.assert_allclose(decode_image(f.read(), name), np.asarray(load(path)), rtol=0, atol=1e-4)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="base64"):
        images_from_input(["not base64 !"])
    with pytest.raises(ValueError, match="neither DICOM nor an image"):
        images_from_input([base64.b64encode(b"hello").decode()])
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        images_from_input(np.zeros((2, 7, 8, 8), np.float32))
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        export_serving(tiny_student(), png_preprocessing(), CLASSES[:2], SIZE, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict, timeout: float = 60) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _probs(predictions) -> np.ndarray:
    return np.array([[p["probabilities"][c] for c in CLASSES] for p in predictions])


@pytest.mark.slow
def test_registered_pyfunc_serves_over_http_like_model_pt(tmp_path, png_file, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from monai_rd.handlers import MLflowModelRegistryHandler

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    model = tiny_student(3)
    ckpt = tmp_path / "model.pt"
    torch.save(model.state_dict(), ckpt)
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    card = tmp_path / "README.md"
    card.write_text("# card\nTeacher: {{teacher}}; student: {{student}}\n\n{{metrics}}\n")
    serving = PyfuncServing(png_preprocessing(), CLASSES, SIZE, card=card, card_values={"student": "tiny"})
    handler = MLflowModelRegistryHandler(
        tiny_student(99),
        str(ckpt),
        "served",
        input_shape=(3, SIZE, SIZE),
        tags={"teacher": "t"},
        tracking_uri=uri,
        experiment_name="serve",
        run_name="r",
        serving=serving,
    )
    assert handler.register({"val_accuracy": 0.5, "val_accuracy_ci_low": 0.25, "val_accuracy_ci_high": 0.75}) == "1"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("served", "champion")
    # the model card, rendered from the run, is the version's description and an artifact of the run
    assert (
        "Teacher: t; student: tiny" in version.description
        and "| val_accuracy | 0.5000 | [0.2500, 0.7500] |" in version.description
        and "{{" not in version.description
    )
    model_uri = "models:/served@champion"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        assert mlflow.artifacts.load_text(f"runs:/{version.run_id}/model_card.md") == version.description
        # requirements: public packages only, all importable here
        local = mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "dl"))
        reqs = [r.strip() for r in open(os.path.join(local, "requirements.txt")) if r.strip()]
        names = [r.split("==")[0].split(">=")[0].split("<")[0].strip().lower() for r in reqs]
        assert not {"monai-rd", "monai_rd"} & set(names), reqs
        import_names = {
            "pillow": "PIL",
            "opencv-python-headless": "cv2",
            "mlflow": "mlflow",
            "cloudpickle": "cloudpickle",
        }
        for n in names:
            importlib.import_module(import_names.get(n, n.replace("-", "_")))
        assert set(serving_requirements()) <= set(reqs)
        with open(os.path.join(local, "MLmodel")) as f:
            assert "monai_rd" not in f.read().split("code:")[0]  # the loader module is mlflow's, not ours

        pyfunc = mlflow.pyfunc.load_model(model_uri)
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    x = (np.random.default_rng(0).random((3, 3, 40, 40)) * 255).astype(np.float32)
    # independent preprocessing: /255, clip, bilinear resize (what rd_busi's pipeline does to a decoded image)
    batch = torch.nn.functional.interpolate(
        torch.from_numpy(np.clip(x / 255.0, 0, 1)), size=(SIZE, SIZE), mode="bilinear", align_corners=False
    )
    with torch.no_grad():
        expected = torch.softmax(model(batch), 1).numpy()
    np.testing.assert_allclose(_probs(pyfunc.predict(x)), expected, rtol=0, atol=1e-5)

    # a real server, as a user starts it
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", proc, tmp_path / "serve.log", timeout=240)
        url = f"http://127.0.0.1:{port}/invocations"
        got = _post(url, {"inputs": x.tolist()})["predictions"]
        np.testing.assert_allclose(_probs(got), expected, rtol=0, atol=1e-5)
        assert [p["label"] for p in got] == [CLASSES[i] for i in expected.argmax(1)]
        png = base64.b64encode(png_file.read_bytes()).decode()
        got = _post(url, {"dataframe_split": {"columns": ["image"], "data": [[png]]}})["predictions"]
        np.testing.assert_allclose(_probs(got)[0], reference_probs(model, png_preprocessing(), png_file), atol=1e-5)
        with open(get_testdata_file("CT_small.dcm"), "rb") as f:
            dcm = base64.b64encode(f.read()).decode()
        got = _post(url, {"inputs": [png, dcm]})["predictions"]
        assert len(got) == 2 and all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in got)
        np.testing.assert_allclose(_probs(got)[0], reference_probs(model, png_preprocessing(), png_file), atol=1e-5)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
        log.close()


def _served_bundles():
    """(bundle, its metadata.json's class count) of every bundle whose registry handler has a pyfunc ``serving``
    (all but the volume bundle rd_mosmed), from the one list of bundles."""
    from monai_rd.bundle import bundle_names
    from tests.conftest import BUNDLES

    out = []
    for name in bundle_names():
        with open(os.path.join(BUNDLES, name, "configs", "train.json")) as f:
            handlers = json.load(f)["train"]["handlers"]
        if any("serving" in h for h in handlers if isinstance(h, dict)):
            with open(os.path.join(BUNDLES, name, "configs", "metadata.json")) as f:
                out.append((name, json.load(f)["network_data_format"]["outputs"]["pred"]["num_channels"]))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("bundle,n_classes", _served_bundles())
def test_every_bundle_run_exports_a_serving_folder(bundle, n_classes, tmp_path):
    """From a run's output_dir alone (executed config + model.pt): the bundle's own eval transforms, its classes."""
    from monai_rd.bundle import write_executed_config
    from monai_rd.deploy import export_run_serving
    from tests.conftest import BUNDLES

    run = tmp_path / "run"
    run.mkdir()
    model = StudentClassifier("mobilenet_v3_small", n_classes).eval()
    torch.save(model.state_dict(), run / "model.pt")
    write_executed_config(
        os.path.join(BUNDLES, bundle, "configs", "train.json"),
        {"student": "mobilenet_v3_small", "image_size": SIZE},
        run / "executed_config.json",
    )
    if bundle == "rd_clinical":  # its class names come from the run's datalist
        (run / "datalist.json").write_text(json.dumps({"classes": ["a", "b"]}))
    served = ServingModel(export_run_serving(run, tmp_path / "serving"))
    assert len(served.class_names) == n_classes
    assert served.activation == ("sigmoid" if bundle == "rd_chestxray" else "softmax")
    x = (np.random.default_rng(0).random((2, 3, 40, 50)) * 255).astype(np.float32)
    batch = torch.stack([served.preprocess(a) for a in x])
    with torch.no_grad():
        logits = model(batch)
    expected = (torch.sigmoid(logits) if served.activation == "sigmoid" else torch.softmax(logits, 1)).numpy()
    np.testing.assert_allclose(served.predict_proba(x), expected, rtol=0, atol=1e-5)
    with open(get_testdata_file("CT_small.dcm"), "rb") as f:
        assert served.predict_proba([f.read()]).shape == (1, n_classes)


def test_read_series_takes_the_middle_slice_along_z_and_refuses_two_series(tmp_path):
    from monai_rd.data.synthetic import write_dicom_series
    from monai_rd.deploy.runtime import read_series

    folder = tmp_path / "s"
    write_dicom_series(folder, n_slices=5, size=32, lesion=True, seed=3)  # shuffled file names
    files = sorted(folder.glob("*.dcm"))
    z = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in files]
    middle = files[int(np.argsort(z)[2])]
    ds = pydicom.dcmread(middle)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(read_series(folder), expected[None].astype(np.float32))
    write_dicom_series(folder, n_slices=2, size=32, seed=4, prefix="B")  # a second series in the same folder
    with pytest.raises(ValueError, match="2 DICOM series"):
        read_series(folder)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not DICOM")
    with pytest.raises(ValueError, match="no DICOM file"):
        read_series(tmp_path / "empty")

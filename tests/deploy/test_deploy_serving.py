"""Serving folders, the MLflow pyfunc student and a real ``mlflow models serve``, against the eager model.pt."""

import base64
import importlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
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
from monai_rd.deploy.serving import SERVING_REQUIREMENTS, loader_steps
from monai_rd.deploy.runtime import ServingModel, file_bytes
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
    """rd_clinical's preprocessing: monai_rd's medical reader, the slice, percentiles, RGB, resize."""
    from monai_rd.data import MedicalImageReader
    from monai_rd.transforms import ExtractSliced

    return Compose(
        [
            LoadImaged(
                "image",
                reader=MedicalImageReader(nifti={"slice_axis": "axial"}),
                image_only=True,
                ensure_channel_first=True,
            ),
            ExtractSliced("image"),
            ScaleIntensityRangePercentilesd("image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
            EnsureRGBd("image"),
            Resized("image", (SIZE, SIZE), mode="bilinear"),
        ]
    )


def reference_probs(model, preprocessing, path) -> np.ndarray:
    """The bundle's own pipeline on the file + the eager student: what model.pt predicts (of a volume, the middle
    slice, as inference.json's default slice_mode does)."""
    from monai_rd.data import expand_source

    k = expand_source(str(path), slice_mode="middle")[0][1]
    x = preprocessing({"image": str(path), "label": 0, "slice": k})["image"]
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(x)[None].float()), 1).numpy()[0]


@pytest.fixture
def png_file(tmp_path):
    rng = np.random.default_rng(1)
    arr = (rng.random((45, 57)) * 255).astype(np.uint8)  # greyscale, not square, not SIZE
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    return path


def test_serving_transforms_keep_the_loader_and_restrict_keys():
    ts = serving_transforms(png_preprocessing())
    names = ["LoadImaged", "EnsureRGBd", "ScaleIntensityRanged", "Resized", "EnsureTyped"]
    assert [type(t).__name__ for t in ts] == names and loader_steps(ts) == 1
    assert all(tuple(t.keys) == ("image",) for t in ts)
    with pytest.raises(ValueError, match="RandFlipd is random"):
        serving_transforms(Compose([RandFlipd("image", prob=0.5)]))
    with pytest.raises(ValueError, match="no LoadImaged"):
        serving_transforms(png_preprocessing().transforms[1:])


def test_serving_folder_predicts_png_and_dicom_like_the_bundle(tmp_path, png_file):
    model = tiny_student()
    dest = export_serving(model, png_preprocessing(), CLASSES, SIZE, tmp_path / "serving")
    served = ServingModel(dest)
    assert served.class_names == CLASSES and json.loads((tmp_path / "serving" / "serving.json").read_text())
    # issue 28, item 8: the student is ONNX run by onnxruntime (torch.jit.load is deprecated in torch 2.14)
    assert sorted(p.name for p in (tmp_path / "serving").glob("student.*")) == ["student.onnx"]
    assert (
        served.meta["onnx_max_abs_diff"] < 1e-4 and "torch.jit" not in open(served.path + "/code/rd_runtime.py").read()
    )
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


def test_serving_folder_code_imports_without_the_installed_package(tmp_path):
    """Every module the folder's ``code/monai_rd`` carries imports from that copy alone (CI of stop 34: the readers
    imported ``monai_rd.data.errors``, which the folder did not carry, and ``mlflow models serve`` died at start-up)."""
    dest = export_serving(tiny_student(), dicom_preprocessing(), CLASSES, SIZE, tmp_path / "serving")
    code = os.path.join(dest, "code")
    script = (
        "import importlib, pkgutil, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import monai_rd\n"
        "assert monai_rd.__file__.startswith(sys.argv[1]), monai_rd.__file__\n"
        "names = [m.name for m in pkgutil.walk_packages(monai_rd.__path__, 'monai_rd.', onerror=lambda n: None)]\n"
        "for name in names:\n"
        "    assert importlib.import_module(name).__file__.startswith(sys.argv[1]), name\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) > 10  # the readers, the transforms and utils, not an empty package


@pytest.fixture(scope="module")
def clinical(tmp_path_factory):
    """rd_clinical: a run's serving folder (export_run_serving, from its executed config), the bundle's own
    inference.json preprocessing for that run, and the run's student."""
    from monai.bundle import ConfigParser

    from monai_rd.bundle import write_executed_config
    from monai_rd.deploy import export_run_serving
    from tests.conftest import BUNDLES

    root = tmp_path_factory.mktemp("clinical")
    run = root / "run"
    run.mkdir()
    model = StudentClassifier("mobilenet_v3_small", 2).eval()
    torch.save(model.state_dict(), run / "model.pt")
    bundle = os.path.join(BUNDLES, "rd_clinical")
    train = os.path.join(bundle, "configs", "train.json")
    write_executed_config(train, {"student": "mobilenet_v3_small", "image_size": SIZE}, run / "executed_config.json")
    (run / "datalist.json").write_text(json.dumps({"classes": ["a", "b"]}))
    served = ServingModel(export_run_serving(run, root / "serving"))
    parser = ConfigParser()
    parser.read_config(os.path.join(bundle, "configs", "inference.json"))
    parser["bundle_root"], parser["output_dir"] = bundle, str(run)
    return served, parser.get_parsed_content("preprocessing"), model


def real_files(tmp_path) -> list[str]:
    """Every file pydicom and pydicom-data ship (DICOM or not), nibabel's NIfTI test files, and PNG/JPEG files of
    each kind a clinic exports (8- and 16-bit grey, RGB, palette, RGBA)."""
    import nibabel

    files = [f for f in pydicom.data.get_testdata_files() if os.path.isfile(f)]
    nib_data = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")
    files += sorted(os.path.join(nib_data, f) for f in os.listdir(nib_data) if f.endswith((".nii", ".nii.gz")))
    rng = np.random.default_rng(5)
    grey = (rng.random((45, 57)) * 255).astype(np.uint8)
    images = {
        "grey.png": Image.fromarray(grey),
        "grey16.png": Image.fromarray((grey.astype(np.uint16) * 257)),
        "rgb.jpg": Image.fromarray(np.stack([grey, grey[::-1], grey[:, ::-1]], -1)),
        "palette.png": Image.fromarray(grey).convert("P"),
        "rgba.png": Image.fromarray(np.stack([grey] * 4, -1), "RGBA"),
    }
    for name, im in images.items():
        im.save(tmp_path / name)
        files.append(str(tmp_path / name))
    return files


def test_served_model_reads_every_real_file_like_inference_json(clinical, tmp_path):
    """Item 1 of issue 28: the served model decodes with the training reader, shipped inside it: on every real
    DICOM of pydicom and pydicom-data, nibabel's NIfTI files and PNG/JPEG, its decoded array equals what
    rd_clinical's inference.json loads, and its probabilities what inference.json's preprocessing + the student
    give; a file inference.json refuses, the served model refuses too, naming the input."""
    from monai_rd.data import select_slices

    served, inference, model = clinical
    loader, rest = inference.transforms[0], Compose(inference.transforms[1:])
    assert type(loader).__name__ == "LoadImaged" and served.meta["preprocessing"] == [
        type(t).__name__ for t in inference.transforms
    ]
    read = refused = nonfinite = 0
    for path in real_files(tmp_path):
        data = open(path, "rb").read()
        name = os.path.basename(path)
        try:
            expected = loader({"image": path})["image"]
        except Exception:
            refused += 1
            with pytest.raises(ValueError, match=name.replace(".", r"\.")):
                served.load_bytes(data, name)
            continue
        read += 1
        got = served.load_bytes(data, name)
        np.testing.assert_array_equal(np.asarray(got["image"]), np.asarray(expected), err_msg=path)  # NaN == NaN
        # inference.json's slice of a volume: expand_inputs' select_slices, slice_mode "middle"
        k = select_slices(np.asarray(expected[0]), "middle")[0] if expected.ndim == 4 else -1
        assert got["slice"] == k, path
        try:
            x = rest({"image": expected, "slice": k})["image"]
        except Exception:  # inference.json cannot preprocess it (a 4D NIfTI): neither can the served model
            with pytest.raises(Exception):
                served._proba([got])
            continue
        if not torch.isfinite(torch.as_tensor(x)).all():  # inference.json refuses it by name: so does serving
            nonfinite += 1
            with pytest.raises(ValueError, match=re.escape(name) + ": holds NaN/Inf pixel values"):
                served._proba([got], [name])
            continue
        with torch.no_grad():
            probs = torch.softmax(model(torch.as_tensor(x)[None].float()), 1).numpy()
        np.testing.assert_allclose(served._proba([got]), probs, rtol=0, atol=1e-5, err_msg=path)
    assert read >= 160 and refused >= 80, (read, refused)  # 261 DICOM files here, 8 NIfTI, 5 images
    assert nonfinite >= 1, "nibabel's resampled_anat_moved.nii holds NaN: it should have been refused"


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="base64"):
        file_bytes(["not base64 !"])
    with pytest.raises(ValueError, match="Decoded pixel arrays are not accepted"):
        file_bytes(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="Decoded pixel arrays are not accepted"):
        file_bytes({"image": [[[0.0]]]})
    served = ServingModel(export_serving(tiny_student(), png_preprocessing(), CLASSES, SIZE, tmp_path / "s"))
    with pytest.raises(ValueError, match="input 0: not an image file the model reads"):
        served.predict([base64.b64encode(b"hello").decode()])
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
    # rd_clinical's loader: monai_rd's MedicalImageReader (DICOM, NIfTI, PNG/JPEG), shipped inside the model
    serving = PyfuncServing(dicom_preprocessing(), CLASSES, SIZE, card=card, card_values={"student": "tiny"})
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
        import_names = {**SERVING_REQUIREMENTS, "mlflow": "mlflow", "cloudpickle": "cloudpickle"}
        for n in names:
            importlib.import_module(import_names.get(n, n.replace("-", "_")))
        assert set(serving_requirements()) <= set(reqs)
        with open(os.path.join(local, "MLmodel")) as f:
            assert "monai_rd" not in f.read().split("code:")[0]  # the loader module is mlflow's, not ours

        pyfunc = mlflow.pyfunc.load_model(model_uri)
        # issue 28, item 3: the registered version carries a signature (one string column "image": base64 image
        # files) and an input example, read back through MLflow's own client
        info = mlflow.models.get_model_info(f"models:/served/{version.version}")
        assert info.signature.inputs.input_names() == ["image"]
        assert [t.name for t in info.signature.inputs.input_types()] == ["string"]
        assert info.saved_input_example_info is not None
        example = mlflow.models.Model.load(model_uri).load_input_example(local)
        assert list(example) == ["image"] and len(example["image"]) == 1
        with open(os.path.join(local, "serving_input_example.json")) as f:
            serving_example = json.load(f)  # what MLflow says a request looks like
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    # files where the runtime's own decoder (before issue 28) differed from the training reader: palette colour,
    # MONOCHROME1, a Modality LUT sequence, 12-bit JPEG-lossy (GDCM fallback), a multi-frame file; a NIfTI volume
    import nibabel

    files = [str(png_file)] + [
        get_testdata_file(n)
        for n in ("CT_small.dcm", "OBXXXX1A.dcm", "mlut_18.dcm", "JPEG-lossy.dcm", "emri_small.dcm")
    ]
    files += [get_testdata_file(os.path.join("dicomdirtests", "77654033", "CR1", "6154"))]
    files += [os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", "anatomical.nii")]
    encoded = [base64.b64encode(open(f, "rb").read()).decode() for f in files]
    expected = np.stack([reference_probs(model, dicom_preprocessing(), f) for f in files])
    np.testing.assert_allclose(_probs(pyfunc.predict({"image": encoded})), expected, rtol=0, atol=1e-5)
    assert [p["label"] for p in pyfunc.predict(example)] in ([[c] for c in CLASSES])  # the example predicts
    # the other input, decoded arrays: refused by the signature (in Python) or by the runtime, saying what to send
    with pytest.raises((ValueError, mlflow.exceptions.MlflowException), match="Decoded pixel arrays|enforce schema"):
        pyfunc.predict(np.zeros((1, 3, 8, 8), np.float32))

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
        assert len(_post(url, serving_example)["predictions"]) == 1
        got = _post(url, {"inputs": encoded})["predictions"]
        np.testing.assert_allclose(_probs(got), expected, rtol=0, atol=1e-5)
        assert [p["label"] for p in got] == [CLASSES[i] for i in expected.argmax(1)]
        got = _post(url, {"dataframe_split": {"columns": ["image"], "data": [[e] for e in encoded[:2]]}})
        np.testing.assert_allclose(_probs(got["predictions"]), expected[:2], atol=1e-5)
        with pytest.raises(urllib.error.HTTPError) as refused:  # decoded arrays: a clear error, not a guess
            _post(url, {"inputs": np.zeros((1, 3, 8, 8)).tolist()})
        assert "Decoded pixel arrays are not accepted" in refused.value.read().decode()
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
    files = []
    for i, arr in enumerate((np.random.default_rng(0).random((2, 40, 50, 3)) * 255).astype(np.uint8)):
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
        files.append(str(tmp_path / f"{i}.png"))
    files.append(get_testdata_file("CT_small.dcm"))
    # the bundle's own loader and eval transforms (train.json's validate::preprocessing), what the folder holds
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(run / "executed_config.json"))
    parser["output_dir"] = str(run)
    pre = Compose(serving_transforms(parser.get_parsed_content("validate::preprocessing")))
    batch = torch.stack([torch.as_tensor(pre({"image": f, "slice": -1})["image"]).float() for f in files])
    with torch.no_grad():
        logits = model(batch)
    expected = (torch.sigmoid(logits) if served.activation == "sigmoid" else torch.softmax(logits, 1)).numpy()
    np.testing.assert_allclose(served.predict_files(files), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(served.predict_proba([open(f, "rb").read() for f in files]), expected, atol=1e-5)


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

"""Shared fixtures: fabricated datasets in the real on-disk layouts, and a bundle runner."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys

import pytest

from tests.helpers.forkserver import run_module

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` (the README's commands): two workers share 2 cores, so one torch thread each, in the worker and
    # in every process it starts (set before torch loads: libgomp reads it once)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:  # a plugin loaded it first
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from tests.helpers import REPO  # noqa: E402  (re-exported: tests import it from here)

BUNDLES = os.path.join(REPO, "bundles")
#: what this session collected before -m/-k deselected anything: {"total", "slow", "whole"} (whole: every
#: tests/**/test_*.py file was collected, so the counts are the suite's; test_readme_figures compares them)
COLLECTION: dict = {}


@pytest.hookimpl(tryfirst=True)  # before the mark plugin deselects
def pytest_collection_modifyitems(session, config, items):
    import glob

    files = {os.path.basename(str(item.path)) for item in items}
    every = {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "tests", "**", "test_*.py"), recursive=True)}
    COLLECTION.update(total=len(items), slow=sum(1 for i in items if i.get_closest_marker("slow")),
                      whole=files == every)  # fmt: skip


def run_bundle(
    config_files, *, cwd=None, timeout=600, env=None, mlflow_may_fail=False, **overrides
) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle run`` as a user would, overrides as ``--key value``; fail with its output.

    The run is a fork of the tests' pre-imported server (tests/helpers/forkserver.py: the same ``runpy`` entry as
    ``python -m``, without 9 s of imports), or a real interpreter with ``MONAI_RD_TEST_FORK=0``.

    A run that finishes but leaves ``<output_dir>/mlflow_not_logged.json`` lost MLflow logging on the way (the
    handlers keep training going and write that list): that fails too, unless the test breaks MLflow on purpose
    (``mlflow_may_fail``).
    """
    from monai_rd.bundle import bundle_args

    # relative config paths are relative to the run's working directory, as on a user's command line
    files = [
        os.path.join(str(cwd or REPO), c) for c in ([config_files] if isinstance(config_files, str) else config_files)
    ]
    # the package's one bundle command; the bundle is named by its folder (configs/<file> or absolute paths)
    argv = bundle_args(os.path.dirname(os.path.dirname(os.path.abspath(files[0]))), files, **overrides)
    args = argv[argv.index("monai.bundle") + 1 :]
    proc = run_module("monai.bundle", args, cwd=cwd or REPO, env={**os.environ, **(env or {})}, timeout=timeout)
    cmd = proc.args
    if proc.returncode != 0:
        raise AssertionError(
            f"bundle run failed ({proc.returncode}):\n{' '.join(cmd)}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
    if not mlflow_may_fail and "output_dir" in overrides:
        not_logged = os.path.join(os.fspath(overrides["output_dir"]), "mlflow_not_logged.json")
        if os.path.isfile(not_logged):
            with open(not_logged, encoding="utf-8") as f:
                raise AssertionError(
                    f"the bundle run lost MLflow logging ({not_logged}):\n{f.read()[:3000]}\n{' '.join(cmd)}"
                )
    return proc


@pytest.fixture(scope="session")
def busi_dir(tmp_path_factory) -> str:
    """A fabricated BUSI folder (``Dataset_BUSI_with_GT/<class>/<class> (N).png`` + masks), 32 px images."""
    from monai_rd.data import make_busi_like

    return make_busi_like(tmp_path_factory.mktemp("busi"), n_per_class=10, size=32, seed=0)


@pytest.fixture(scope="session")
def dicom_series_dir(tmp_path_factory) -> str:
    """``<root>/<class>/<patient>/<series>/IM*.dcm``: 2 classes x 4 patients, one 4-slice 32 px CT series each."""
    from monai_rd.data import make_dicom_series_dataset

    return make_dicom_series_dataset(tmp_path_factory.mktemp("dicom_series"), n_patients=4, n_slices=4, size=32)


@pytest.fixture(scope="session")
def nifti_dir(tmp_path_factory) -> str:
    """``<root>/<class>/<subject>.nii.gz``: 2 classes x 4 LAS volumes of 20 x 24 x 6 with empty end slices."""
    from monai_rd.data import make_nifti_dataset

    return make_nifti_dataset(tmp_path_factory.mktemp("nifti"), n_subjects=4, shape=(20, 24, 6))


_TMP_PATHS = itertools.count()


@pytest.fixture()
def tmp_path(tmp_path):
    """pytest's ``tmp_path``, one folder deeper, under a name no earlier test of this process had.

    pyproject.toml removes a passed test's folder at its end (``tmp_path_retention_policy``), and pytest then numbers
    the next test of the same name into the same path. MLflow keeps one store per tracking URI for the life of the
    process (an ``lru_cache``), whose open SQLite connection still reads the removed file: a reused
    ``sqlite:///<tmp_path>/mlruns.db`` showed the previous test's runs (three slow-tier failures at b47d78a)."""
    path = tmp_path / f"{tmp_path.name}-{next(_TMP_PATHS)}"
    path.mkdir()
    return path


@pytest.fixture()
def mixed_folder(tmp_path):
    """Two good images (PNG, JPG, 32 px RGB), a corrupt PNG (valid signature, garbage body), a zero-byte PNG."""
    folder = tmp_path / "in"
    folder.mkdir()
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "a good.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "b_good.jpg", quality=95)
    (folder / "c_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
    (folder / "d_empty.png").write_bytes(b"")
    return folder


@contextlib.contextmanager
def start_mlflow_server(root):
    """Start a real ``mlflow server`` on 127.0.0.1 (free port, SQLite backend and artifacts under ``root``).

    Yields ``{"uri", "pgid", "root"}`` once ``/health`` answers (at most 120 s); the server runs in its own
    process group so that it (uvicorn and its job runner) is killed as a whole, by a test or on exit.
    """
    import signal
    import socket
    import time
    import urllib.request
    from pathlib import Path

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root}/backend.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--serve-artifacts",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not come up on {uri}:\n{(root / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield {"uri": uri, "pgid": proc.pid, "root": str(root)}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` for the whole session (see :func:`start_mlflow_server`); do not kill it in a test."""
    with start_mlflow_server(tmp_path_factory.mktemp("mlflow_server")) as server:
        yield server


@pytest.fixture(scope="session")
def installed_package(tmp_path_factory):
    """monai_rd built from a copy of the source tree and installed, not editable, into a folder of its own.

    Returns ``(site folder, env)``: run ``sys.executable`` with ``env`` to import the installed copy.
    """
    import shutil

    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "presets", "outputs")
    for folder in ("monai_rd", "transforms", "bundles"):
        shutil.copytree(os.path.join(REPO, folder), src / folder, ignore=ignore)
    target = tmp / "site"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "--target", str(target), str(src)],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return target, {**env, "PYTHONPATH": str(target)}

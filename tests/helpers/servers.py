"""Helpers of the tests that start real servers (mlflow models serve, MONAI Label) or use an app's own venv."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

import pytest


def wait_until_up(url: str, proc: subprocess.Popen, log_path, timeout: float = 300) -> bytes:
    """Poll ``url`` until it answers 200 (its body is returned); fail with the log's tail if ``proc`` dies or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return r.read()
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} did not come up (exit code {proc.poll()}):\n{open(log_path).read()[-5000:]}")


def venv_python_or_skip(venv: str, probe: str, build: str) -> str:
    """``<venv>/bin/python`` if it runs ``probe``; else skip, or fail under CI (``CI`` set), saying ``build``."""
    python = os.path.join(venv, "bin", "python")
    if os.access(python, os.X_OK) and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
        return python
    reason = f"no usable venv at {venv!r} ({probe!r} fails there): {build}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)

"""The tests' fork server (tests/helpers/forkserver.py) answers ``python -m <module>`` exactly as a real interpreter does."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import forkserver as _forkserver

PROBE = """
import atexit, os, sys, threading, time
atexit.register(lambda: print("atexit ran", flush=True))
def late():
    time.sleep(0.3)
    print("thread joined", flush=True)
threading.Thread(target=late).start()  # non-daemon: the interpreter waits for it before atexit
print("cwd", os.getcwd(), "argv", sys.argv[1:], "var", os.environ.get("PROBE_VAR"), "path0", sys.path[0])
print("to stderr", file=sys.stderr)
if "--sleep" in sys.argv:
    time.sleep(60)
if "--route" in sys.argv:  # a fork of the server has torch imported already; a fresh interpreter has not
    print("forked" if "torch" in sys.modules else "fresh")
if "--raise" in sys.argv:  # an uncaught error goes through sys.excepthook (monai_rd's bundles install one)
    sys.excepthook = lambda t, v, tb: (sys.__excepthook__(t, v, tb), print("hook saw", v, file=sys.stderr))
    raise ValueError("boom")
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture()
def probe_dir(tmp_path):
    (tmp_path / "probe_mod.py").write_text(PROBE)
    return str(tmp_path)


def _both(monkeypatch, *args, env, cwd):
    forked = _forkserver.run_module("probe_mod", list(args), cwd=cwd, env=env, timeout=60)
    monkeypatch.setenv("MONAI_RD_TEST_FORK", "0")
    real = _forkserver.run_module("probe_mod", list(args), cwd=cwd, env=env, timeout=60)
    monkeypatch.delenv("MONAI_RD_TEST_FORK")
    return forked, real


@pytest.mark.parametrize("args", [("3", "x y"), ("0",), ("0", "--raise")])
def test_a_forked_run_equals_a_real_interpreter(monkeypatch, probe_dir, args):
    env = {**os.environ, "PROBE_VAR": "set for this run only"}
    forked, real = _both(monkeypatch, *args, env=env, cwd=probe_dir)
    assert forked.args == real.args == [sys.executable, "-m", "probe_mod", *args]
    assert (forked.returncode, forked.stdout) == (real.returncode, real.stdout)
    assert forked.returncode == (1 if "--raise" in args else int(args[0]))
    assert f"cwd {probe_dir}" in forked.stdout and "set for this run only" in forked.stdout
    assert forked.stdout.rstrip().endswith("thread joined\natexit ran")
    if "--raise" in args:
        for proc in (forked, real):  # the frames above the module's own differ (runpy's entry points): not the end
            assert proc.stderr.endswith('in <module>\n    raise ValueError("boom")\nValueError: boom\nhook saw boom\n')
    else:
        assert forked.stderr == real.stderr == "to stderr\n"
    assert "PROBE_VAR" not in os.environ  # the request's environment stays in the child


def test_a_timeout_kills_the_child_and_the_server_answers_the_next_request(probe_dir):
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        _forkserver.run_module("probe_mod", ["0", "--sleep"], cwd=probe_dir, env=dict(os.environ), timeout=2)
    assert time.monotonic() - start < 30
    assert _forkserver.run_module("probe_mod", ["5"], cwd=probe_dir, env=dict(os.environ)).returncode == 5


def test_a_variable_read_at_import_time_gets_a_real_interpreter(probe_dir):
    """HF_HUB_OFFLINE is read when huggingface_hub is imported: a fork of the server could not apply it."""
    route = _forkserver.run_module("probe_mod", ["0", "--route"], cwd=probe_dir, env=dict(os.environ))
    assert "forked" in route.stdout.splitlines()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    route = _forkserver.run_module("probe_mod", ["0", "--route"], cwd=probe_dir, env=env)
    assert route.returncode == 0 and "fresh" in route.stdout.splitlines()

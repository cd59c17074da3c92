"""``python -m <module> args...`` for the tests, without paying the interpreter's import time on every run.

A ``python -m monai.bundle run`` spends about 9 s of a 2-core machine importing torch, MONAI, MLflow and ignite
before it reads its config; the slow tier starts it well over a hundred times. This module keeps one clean server
process per test process that has imported them once and answers each request with ``os.fork()``: the child sets
the request's environment, working folder and argv, points file descriptors 0-2 at /dev/null and two log files,
runs the module as ``__main__`` (``runpy``, exactly what ``python -m`` does), then shuts down as an interpreter
does (non-daemon threads joined, ``atexit`` handlers run, streams flushed) and exits with the module's code.

The server never computes anything, so no thread pool (OpenMP, MLflow's async logger) exists to be forked half
way. Variables that the pre-imported libraries read at import time (``HF_*``, ``TORCH_*``, ``PYTHON*``...) cannot
take effect in a fork: a request that changes one runs as a real ``subprocess`` instead, as does every request when
``MONAI_RD_TEST_FORK=0`` (then the suite runs exactly as it did before this module). ``OMP_NUM_THREADS``, read
by libgomp when torch loads, is applied with ``torch.set_num_threads`` in the child.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading

#: what the server imports once: everything ``python -m monai.bundle run`` of a monai_rd bundle loads anyway
PRELOAD = ("torch", "torchvision", "monai", "monai.bundle", "monai.bundle.scripts", "ignite.engine", "mlflow",
           "monai_rd", "monai_rd.engines", "monai_rd.handlers", "monai_rd.networks", "monai_rd.data",
           "monai_rd.transforms", "monai_rd.methods")  # fmt: skip
#: prefixes of environment variables that some pre-imported library reads at import: changing one forces a real run
IMPORT_TIME_ENV = ("PYTHON", "HF_", "HUGGINGFACE", "TRANSFORMERS", "TORCH", "CUDA", "LD_", "MONAI", "KMP_", "MKL")


def _enabled() -> bool:
    return os.environ.get("MONAI_RD_TEST_FORK", "1") != "0"


# ----------------------------------------------------------------------------------------------- the server
def _child(request: dict) -> None:
    """In the forked child: become ``python -m <module> <args>`` as the request describes, then exit."""
    os.setsid()  # its own process group: a timeout kills it and whatever it started, never the server
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    code = 1
    try:
        import runpy

        import torch

        if "OMP_NUM_THREADS" in os.environ:
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        sys.argv = [request["module"], *request["args"]]  # runpy sets argv[0] to the module's file, as -m does
        sys.path[0] = request["cwd"]  # -m puts the working folder first on sys.path
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:  # what the interpreter does with it
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:
            sys.excepthook(*sys.exc_info())  # as the interpreter does: a bundle's own hook prints its report
            code = 1
        threading._shutdown()  # join non-daemon threads, as Py_Finalize does before atexit
        import atexit

        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def serve() -> None:
    """Import :data:`PRELOAD`, then answer JSON requests on stdin: ``{"pid": ...}`` at once, ``{"returncode"}`` at
    the end, one request at a time; exit when stdin closes."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        out.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        out.flush()


# ----------------------------------------------------------------------------------------------- the client
_server: subprocess.Popen | None = None
_server_env: dict = {}
_lock = threading.Lock()


def _start_server() -> subprocess.Popen:
    global _server, _server_env
    if _server is None or _server.poll() is not None:
        _server_env = dict(os.environ)
        from tests.helpers import REPO as root

        _server = subprocess.Popen(
            [sys.executable, "-c", "from tests.helpers.forkserver import serve; serve()"],
            cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        ready = _server.stdout.readline()
        if not ready:
            raise RuntimeError("the tests' fork server died while importing; run with MONAI_RD_TEST_FORK=0 to see why")
    return _server


def _read(server: subprocess.Popen, deadline: float | None) -> dict:
    import time

    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    ready, _, _ = select.select([server.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError
    line = server.stdout.readline()
    if not line:
        raise RuntimeError("the tests' fork server died; run with MONAI_RD_TEST_FORK=0 to see why")
    return json.loads(line)


def run_module(module: str, args: list[str], *, cwd: str, env: dict, timeout: float | None = None):
    """``subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
    timeout=timeout)``, answered by a fork of the server when it can be (see the module docstring)."""
    import time

    cmd = [sys.executable, "-m", module, *args]
    with _lock, tempfile.TemporaryDirectory(prefix="forkserver-") as logs:
        server = _start_server() if _enabled() else None
        changed = {k for k in set(env) | set(_server_env) if env.get(k) != _server_env.get(k)}
        if server is None or any(k.startswith(IMPORT_TIME_ENV) for k in changed):
            return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        request = {"module": module, "args": [str(a) for a in args], "cwd": os.fspath(cwd), "env": env,
                   "stdout": os.path.join(logs, "stdout"), "stderr": os.path.join(logs, "stderr")}  # fmt: skip
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        pid = _read(server, None)["pid"]
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            returncode = _read(server, deadline)["returncode"]
        except TimeoutError:
            os.killpg(pid, signal.SIGKILL)
            _read(server, None)
            raise subprocess.TimeoutExpired(cmd, timeout) from None
        with open(request["stdout"], errors="replace") as f, open(request["stderr"], errors="replace") as g:
            return subprocess.CompletedProcess(cmd, returncode, f.read(), g.read())


def run(cmd: list[str], *, cwd=None, env: dict | None = None, timeout: float | None = None):
    """``subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)``; a
    ``[sys.executable, "-m", module, ...]`` command goes through :func:`run_module`."""
    cmd = [os.fspath(c) for c in cmd]
    if cmd[:2] == [sys.executable, "-m"]:
        return run_module(
            cmd[2], cmd[3:], cwd=os.fspath(cwd or os.getcwd()), env=dict(env or os.environ), timeout=timeout
        )
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)

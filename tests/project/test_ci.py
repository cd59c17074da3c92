"""CI's own parts: the slow tier's claim -> test list, its budget check, and the README's commands in .ci/run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib

import pytest

from tests.conftest import REPO
from tests.helpers.slow_tier import GUARDS

sys.path.insert(0, os.path.join(REPO, ".ci"))
import budget  # noqa: E402  (.ci/budget.py: CI's script, not a package)
import disk  # noqa: E402  (.ci/disk.py)


def test_every_slow_test_names_the_claim_it_guards():
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow", "-p", "no:cacheprovider",
                           "tests"], cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    slow = {re.sub(r"\[.*$", "", line).split("/")[-1] for line in proc.stdout.splitlines() if "::" in line}
    assert len(slow) > 50, proc.stdout[-2000:]
    missing, stale = sorted(slow - set(GUARDS)), sorted(set(GUARDS) - slow)
    assert not missing, "slow tests without a claim in tests/helpers/slow_tier.py:\n  " + "\n  ".join(missing)
    assert not stale, "tests/helpers/slow_tier.py lists tests that are no longer slow tests:\n  " + "\n  ".join(stale)
    assert all(len(claim) > 20 for claim in GUARDS.values())


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3" time="95.0">
<testcase classname="tests.test_a" name="test_quick" time="1.5"/>
<testcase classname="tests.test_b" name="test_slowest[x]" time="80.25"/>
<testcase classname="tests.test_a" name="test_middle" time="13.0"/>
</testsuite></testsuites>"""


def test_budget_warns_over_budget_naming_the_slowest_tests(tmp_path, capsys):
    xml = tmp_path / "slow.xml"
    xml.write_text(JUNIT)
    limit = tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))["tool"]["monai_rd"]["ci"][
        "slow_tier_budget_s"
    ]
    assert 600 <= limit <= 2400
    assert budget.main(["--seconds", str(limit), "--junitxml", str(xml)]) == 0
    out = capsys.readouterr().out
    assert "WARNING" not in out and f"within its budget of {limit} s" in out
    assert budget.main(["--seconds", str(limit + 1), "--junitxml", str(xml)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"WARNING: the slow tier took {limit + 1} s, over its budget of {limit} s")
    assert [line.split()[-1] for line in lines[1:]] == [
        "tests/test_b.py::test_slowest[x]", "tests/test_a.py::test_middle", "tests/test_a.py::test_quick"]  # fmt: skip
    assert "80.2 s" in lines[1] or "80.3 s" in lines[1]
    assert budget.main(["--seconds", "1", "--junitxml", str(tmp_path / "absent.xml")]) == 1


def test_ci_runs_the_readmes_install_and_test_commands():
    """A green CI proves a newcomer can set up: .ci/run runs the README's set-up commands, as written."""
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"## Set-up \(a fresh machine\)\n+```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    assert commands[0] == 'pip install -e ".[dev]"' and len(commands) == 3, commands
    for command in commands:
        assert command in ci, f".ci/run does not run the README's `{command}`"


def test_disk_check_refuses_to_start_without_room_naming_the_folder_and_the_fix(tmp_path, capsys):
    need = disk.required_gb()
    assert 2 <= need <= 60
    assert disk.check(str(tmp_path), 0.001) == 0
    assert "the tests need 0.001 GB" in capsys.readouterr().out
    assert disk.check(str(tmp_path), 1e9) == 1
    err = capsys.readouterr().err
    assert f"under {tmp_path}" in err and "min_free_disk_gb" in err and "TMPDIR" in err


def test_disk_watch_records_the_peak_growth_of_used_space(tmp_path):
    peak_file = tmp_path / "peak"
    watcher = subprocess.Popen([sys.executable, os.path.join(REPO, ".ci", "disk.py"), "watch", str(peak_file),
                                "--interval_s", "0.2"],
                               env={**os.environ, "TMPDIR": str(tmp_path)})  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not peak_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert peak_file.read_text().strip() == "0.0"
        with open(tmp_path / "blob", "wb") as f:  # 512 MiB, really written (not sparse), removed before the next read
            for _ in range(64):
                f.write(b"\x01" * 8 * 1024**2)
            f.flush()
            os.fsync(f.fileno())
        time.sleep(1)
        (tmp_path / "blob").unlink()
        time.sleep(1)
        assert float(peak_file.read_text()) >= 0.3  # the peak stays after the file is gone
    finally:
        watcher.kill()
        watcher.wait()


_TMP_PATHS_SEEN: list[str] = []


@pytest.mark.parametrize("case", [0, 1])
def test_a_tmp_path_is_never_handed_out_twice_after_a_passed_test_removed_its_folder(case, tmp_path):
    """pytest would number the second case into the first's removed folder (tests/conftest.py's ``tmp_path``)."""
    assert str(tmp_path) not in _TMP_PATHS_SEEN and not any(tmp_path.iterdir())
    _TMP_PATHS_SEEN.append(str(tmp_path))

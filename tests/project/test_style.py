"""The style is enforced: the whole tree is formatted and lint-clean under pyproject.toml's [tool.ruff] (the same two
commands .ci/run runs), so a change that breaks either fails the fast tier before it reaches CI."""

import shutil
import subprocess

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("command", [["format", "--check", "."], ["check", "."]], ids=["format", "lint"])
def test_the_tree_passes_ruff(command):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is not installed: pip install -e '.[dev]' (the dev extra pins it)"
    proc = subprocess.run([ruff, *command], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"ruff {' '.join(command)}:\n{proc.stdout}{proc.stderr}"


def test_ci_runs_the_same_commands():
    text = open(f"{REPO}/.ci/run").read()
    assert "ruff format --check ." in text and "ruff check ." in text

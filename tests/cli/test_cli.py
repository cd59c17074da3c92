"""The ``monai-rd`` command line answers ``--help`` at once, and finds the installed bundles from any folder."""

import json
import os
import subprocess
import sys
import time

import pytest

from monai_rd.cli import COMMANDS
from tests.conftest import BUNDLES

HEAVY = ("torch", "monai", "torchvision", "mlflow", "numpy")
PROBE = """
import json, sys
from monai_rd.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _help(args, cwd):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args, "--help"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_imports_nothing_heavy(command, tmp_path):
    proc, seconds = _help([command] if command else [], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "usage: monai-rd" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [], f"--help imported {proc.stdout.splitlines()[-1]}"
    assert seconds < 20, seconds  # generous: the bound that matters is the import check above (< 2 s measured)


@pytest.mark.parametrize("args", [["bundle", "list"], ["bundle", "path", "rd_busi"]])
def test_bundle_list_and_path_import_nothing_heavy(args, tmp_path):
    """They answer at once: the bundles' datalist helpers must not pull torch/MONAI in (they did, 9.5 s a call)."""
    heavy = [module for module in HEAVY if module != "numpy"]  # the datalist helpers use numpy (0.1 s)
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=heavy), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "rd_busi" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [], f"{args} imported {proc.stdout.splitlines()[-1]}"


def test_bundle_path_copy_and_list_from_any_folder(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "monai_rd.cli", "bundle", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    listed = cli("list")
    assert listed.returncode == 0 and "rd_busi" in listed.stdout.split()
    path = cli("path", "rd_busi")
    assert path.returncode == 0 and os.path.samefile(path.stdout.strip(), os.path.join(BUNDLES, "rd_busi"))
    config = cli("path", "rd_busi", "--config", "evaluate.json").stdout.strip()
    assert os.path.isabs(config) and os.path.isfile(config)
    copied = cli("copy", "rd_isic", "my_isic")
    assert copied.returncode == 0 and os.path.isfile(tmp_path / "my_isic" / "configs" / "train.json")
    again = cli("copy", "rd_isic", "my_isic")
    assert again.returncode == 2 and "already exists" in again.stderr
    missing = cli("path", "rd_nope")
    assert missing.returncode == 2 and "Bundle 'rd_nope' not found" in missing.stderr and "rd_busi" in missing.stderr


def test_bundle_command_is_absolute_and_runs_from_anywhere():
    import shlex

    from monai_rd.bundle import bundle_command

    line = bundle_command("rd_busi", ["train.json", "evaluate.json"], output_dir="/runs/x")
    args = shlex.split(line)
    assert args[1:4] == ["-m", "monai.bundle", "run"] and args[-2:] == ["--output_dir", "/runs/x"]
    configs = eval(args[args.index("--config_file") + 1])  # the list form MONAI parses
    assert [os.path.basename(c) for c in configs] == ["train.json", "evaluate.json"]
    assert all(os.path.isabs(c) and os.path.isfile(c) for c in configs)

"""Every ``monai.bundle run`` command in the README and docs names config files that exist and ids they define.

The commands are taken from the Markdown exactly as written (continuation lines joined, ``<placeholders>``
filled); the bundle runs themselves are exercised by the slow tests (test_bundle_rd_busi, test_packaging).
"""

import glob
import os
import re
import shlex

import pytest

from monai_rd.bundle.config_check import _config_list, check_cli_overrides
from tests.conftest import REPO

DOCS = [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]


def _commands():
    out = []
    for path in DOCS:
        text = open(path, encoding="utf-8").read()
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip()
                if "monai.bundle run" in line and " ... " not in line:
                    out.append((os.path.relpath(path, REPO), line))
    return out


COMMANDS = _commands()


def test_the_docs_have_bundle_commands():
    assert len(COMMANDS) >= 5 and any("evaluate.json" in c for _, c in COMMANDS)


@pytest.mark.parametrize("doc,line", COMMANDS, ids=[f"{d}:{i}" for i, (d, _) in enumerate(COMMANDS)])
def test_documented_command_names_real_configs_and_ids(doc, line, monkeypatch):
    line = re.sub(r"\$\(monai-rd bundle path (\w+)\)", r"bundles/\1", line)
    line = re.sub(r"<[^>]+>", "X", line)
    argv = shlex.split(line)
    argv = argv[argv.index("run") + 1:]
    config_file = argv[argv.index("--config_file") + 1]
    configs = _config_list(config_file)
    for config in [configs] if isinstance(configs, str) else configs:
        if "<" not in config and "X/" not in config:
            assert os.path.isfile(os.path.join(REPO, config)), f"{doc}: {config} does not exist"
    monkeypatch.chdir(REPO)  # the documented paths are relative to the repository
    check_cli_overrides(["monai.bundle", "run", *argv])  # raises ConfigError naming an unknown id

"""The README's and docs' commands: every one is run as written or mapped to the test that covers it.

* fast: every documented command (``tests/docs_commands.documented_commands``) is in ``MANIFEST`` and every entry
  is still documented; each ``Covered`` entry names a test that exists; the benchmark/CLI commands that are not
  run parse with their program's own parser; every ``monai.bundle run`` names configs that exist and ids they
  define (continuation lines joined, ``<placeholders>`` filled);
* slow: ``test_documented_commands_run_as_written[group]`` runs each ``Run`` entry (see tests/helpers/docs_commands.py for
  the workspace, placeholder and fast-run-suffix convention) and checks its exit status and artefacts.
"""

import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from monai_rd.bundle.config_check import _config_list, check_cli_overrides
from tests.conftest import REPO
from tests.helpers.docs_commands import DOCS, GROUP_PLACEHOLDERS, MANIFEST, Covered, Run, documented_commands


DOCUMENTED = documented_commands()
COMMANDS = [(d, c) for d, c in DOCUMENTED if "monai.bundle run" in c and " ... " not in f"{c} "]


def test_the_docs_have_bundle_commands():
    assert len(COMMANDS) >= 5 and any("evaluate.json" in c for _, c in COMMANDS)


@pytest.mark.parametrize("doc,line", COMMANDS, ids=[f"{d}:{i}" for i, (d, _) in enumerate(COMMANDS)])
def test_documented_command_names_real_configs_and_ids(doc, line, monkeypatch):
    line = re.sub(r"\$\(monai-rd bundle path (\w+)\)", r"bundles/\1", line)
    line = re.sub(r"<[^>]+>", "X", line)
    argv = shlex.split(line)
    argv = argv[argv.index("run") + 1 :]
    config_file = argv[argv.index("--config_file") + 1]
    configs = _config_list(config_file)
    for config in [configs] if isinstance(configs, str) else configs:
        if "<" not in config and "X/" not in config:
            assert os.path.isfile(os.path.join(REPO, config)), f"{doc}: {config} does not exist"
    monkeypatch.chdir(REPO)  # the documented paths are relative to the repository
    check_cli_overrides(["monai.bundle", "run", *argv])  # raises ConfigError naming an unknown id


# ------------------------------------------------------------------------------ every command: run or covered
RUN_GROUPS = sorted({e.group for e in MANIFEST if isinstance(e, Run)})


def test_every_documented_command_is_in_the_manifest_and_no_entry_is_stale():
    documented = set(DOCUMENTED)
    listed = [(e.doc, e.command) for e in MANIFEST]
    assert len(listed) == len(set(listed)), "an entry is listed twice in tests/helpers/docs_commands.py"
    missing = sorted(documented - set(listed))
    stale = sorted(set(listed) - documented)
    assert not missing, (
        "documented commands in neither category: add each to MANIFEST in tests/helpers/docs_commands.py as Run(...) or "
        "Covered(..., test, why):\n" + "\n".join(f"  {d}: {c}" for d, c in missing)
    )
    assert not stale, "MANIFEST entries no longer in the docs:\n" + "\n".join(f"  {d}: {c}" for d, c in stale)


def test_every_fenced_block_says_what_it_holds():
    """A block without a language would hide its commands from the harness: commands go in ```bash blocks."""
    for path in DOCS:
        fences = re.findall(r"^```(\S*)", open(path, encoding="utf-8").read(), re.M)
        openings = fences[0::2]
        assert all(openings), f"{os.path.relpath(path, REPO)}: a ``` block without a language ({openings})"


def _resolve(node_id):
    path, _, name = node_id.partition("::")
    module = os.path.join(REPO, path)
    assert os.path.isfile(module), f"{node_id}: no such test file"
    source = open(module, encoding="utf-8").read()
    return re.search(rf"^def {re.escape(name)}\(", source, re.M) is not None


@pytest.mark.parametrize("entry", [e for e in MANIFEST if isinstance(e, Covered)], ids=lambda e: e.command[:60])
def test_covered_commands_name_a_test_that_exists_and_a_reason(entry):
    assert _resolve(entry.test), (
        f"{entry.doc}: `{entry.command}` is said to be covered by {entry.test}, which does not exist"
    )
    assert len(entry.why) > 20, entry


def test_run_entries_belong_to_a_group_with_placeholders():
    for entry in MANIFEST:
        if isinstance(entry, Run):
            assert entry.group in GROUP_PLACEHOLDERS, entry
            command = _substitute(entry.run or entry.command, {**GROUP_PLACEHOLDERS[entry.group], **entry.subs}, "/ws")
            assert "<" not in command.replace("<(", "") and " ... " not in f" {command} ", (entry, command)
            assert not command.startswith("-"), f"a fragment needs the full command it implies in run=: {entry}"


def test_the_slow_marker_is_declared():
    """``pytest -m "not slow"`` (the README's fast tier) selects on a marker pyproject.toml declares."""
    assert re.search(r'markers\s*=\s*\[\s*"slow:', open(os.path.join(REPO, "pyproject.toml")).read())


def _parse_documented(command):
    """Parse a documented ``monai-rd <sub>`` / benchmark command with the program's own argument parser."""
    import argparse
    import importlib

    argv = shlex.split(re.sub(r"\s*\[[^\]]*\]", "", command))  # ``[--threads N]``: optional, shown in brackets
    while "=" in argv[0] or argv[0] in ("nice", "-n", "19"):
        argv.pop(0)
    if argv[0] == "monai-rd":
        module, args = importlib.import_module(f"monai_rd.cli.{argv[1].replace('-', '_')}"), argv[2:]
    elif argv[0] == "python" and argv[1] in ("benchmarks/modality_gap.py", "benchmarks/rd_dynamics.py"):
        return _parse_benchmark(argv[1], argv[2:])
    else:
        return None
    parser = argparse.ArgumentParser(exit_on_error=False)
    module.add_arguments(parser)
    return parser.parse_args(args)


def _parse_benchmark(script, args):
    """The benchmark scripts build their parser in main() and set the torch threads right after parsing: stop main
    there."""
    import importlib.util

    name = os.path.splitext(os.path.basename(script))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Parsed(Exception):
        pass

    def stop(n):
        raise Parsed()

    module.torch = type("T", (), {"set_num_threads": staticmethod(stop)})
    with pytest.raises(Parsed):  # SystemExit (exit status 2) instead: an argument the script does not take
        module.main(args)
    return True


def test_documented_benchmark_and_protocol_arguments_parse():
    parsed = [c for _, c in DOCUMENTED if _parse_documented(c) is not None]
    assert len(parsed) >= 15  # cost x3, bench x3, reproduce x4, modality_gap x4, rd_dynamics x3, export ...


# --------------------------------------------------------------------- the harness: run them as written
FAST_TRAIN = {"max_epochs": "1", "image_size": "32", "batch_size": "4", "num_workers": "0", "progress_bar": "false"}


def _substitute(command, placeholders, ws):
    """Replace each placeholder where it stands as a whole word (``D`` but not the ``D`` of ``--dataset_dir``)."""
    for key in sorted(placeholders, key=len, reverse=True):
        value = placeholders[key].format(ws=ws)
        command = re.sub(rf"(?<![^\s\"'=]){re.escape(key)}(?![^\s\"'])", lambda m: value, command)
    return command


def _set_flag(command, flag, value):
    pattern = rf"(--{flag})(\s+|=)(\S+)"
    if flag not in ("no_progress",) and re.search(pattern, command):
        return re.sub(pattern, lambda m: f"{m.group(1)}{m.group(2)}{value}", command)
    return f"{command} --{flag}" + ("" if value is None else f" {value}")


def fast(command):
    """The documented fast-run suffix (tests/helpers/docs_commands.py): set on bundle runs and feature-cache builds."""
    if "monai.bundle run" in command:
        if "evaluate.json" in command or "inference.json" in command:
            flags = {"num_workers": "0"}
        else:
            flags = dict(FAST_TRAIN)
            if "--stage1_epochs" in command:
                flags["stage1_epochs"] = "1"
    elif "monai-rd cache-features" in command:
        flags = {"image_size": "32", "num_workers": "0", "no_progress": None}
    else:
        return command
    for flag, value in flags.items():
        command = _set_flag(command, flag, value)
    return command


def _workspace(ws):
    """A fresh copy of the repository's code, bundles (no models/, outputs/) and apps: the commands' cwd."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "outputs", "models", "eval", "mlruns*")
    for name in ("monai_rd", "bundles", "transforms", "apps", "grids", "benchmarks"):
        shutil.copytree(os.path.join(REPO, name), ws / name, ignore=ignore)
    os.symlink("bundles/rd_busi/outputs", ws / "outputs")  # docs/export.md's `outputs`: the README's training run


def _file_url_large_files(ws, bundle, entry_path, source):
    """Point the workspace bundle's large_files.yml at a fabricated file (file://), for that one entry."""
    (ws / "bundles" / bundle / "large_files.yml").write_text(
        json.dumps({"large_files": [{"path": entry_path, "url": f"file://{source}"}]})
    )  # JSON is YAML


def _fabricate_busi(ws):
    import torch
    import torchvision

    from monai_rd.data import make_busi_like
    from tests.networks.test_teacher_weights import _pmc_clip_checkpoint

    make_busi_like(ws / "data" / "busi", n_per_class=10, size=32, seed=0)
    (ws / "abs" / "models" / "pmc_clip").mkdir(parents=True)
    checkpoint = _pmc_clip_checkpoint(ws / "abs" / "models" / "pmc_clip" / "checkpoint.pt")
    _file_url_large_files(ws, "rd_busi", "models/pmc_clip_checkpoint.pt", checkpoint)
    visual = torch.load(checkpoint, weights_only=True)["state_dict"]
    torch.save(
        {k[len("module.visual.") :]: v for k, v in visual.items() if k.startswith("module.visual.")},
        ws / "image_encoder(resnet50).pth",
    )  # the released image encoder: the visual tower's keys alone
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), ws / "abs" / "models" / "ResNet50.pt")


def _fabricate_datasets(ws):
    from monai_rd.data import synthetic
    from tests.networks.test_teacher_weights import _pmc_clip_checkpoint

    synthetic.make_isic2018_like(ws / "data" / "ISIC2018", n_per_class=4, size=32)
    synthetic.make_ham10000_like(ws / "data" / "HAM10000", n_per_class=4, size=32)
    synthetic.make_covid_ct_like(ws / "data" / "COVID-CT", n_per_class=10, size=32)
    synthetic.make_btc_like(ws / "data" / "BTC", n_train_per_class=5, n_test_per_class=1, size=32)
    synthetic.make_chestxray14_like(ws / "data" / "ChestX-ray14", n_patients=12, size=32)
    checkpoint = _pmc_clip_checkpoint(ws / "checkpoint.pt")
    for bundle in ("rd_isic", "rd_covid", "rd_btc", "rd_chestxray"):  # where download_large_files puts it
        (ws / "bundles" / bundle / "models").mkdir()
        os.link(checkpoint, ws / "bundles" / bundle / "models" / "pmc_clip_checkpoint.pt")


def _fabricate_mosmed(ws):
    from monai.networks.nets import SwinUNETR

    from monai_rd.data.synthetic import make_mosmed_like, write_chest_ct_volume, write_dicom_series
    from tests.helpers.volume_sources import TencentResNet3D, randomize, save_data_parallel, save_swinvit

    make_mosmed_like(ws / "data" / "COVID19_1110", n_per_grade=3, shape=(32, 32, 12))
    save_data_parallel(randomize(TencentResNet3D(18)), ws / "resnet_18_23dataset.pth")
    save_swinvit(randomize(SwinUNETR(in_channels=1, out_channels=1, feature_size=48).swinViT), ws / "model_swinvit.pt")
    _file_url_large_files(ws, "rd_mosmed", "models/model_swinvit.pt", ws / "model_swinvit.pt")
    write_chest_ct_volume(ws / "data" / "to_predict" / "a.nii.gz", "CT-3", (32, 32, 12))
    write_dicom_series(str(ws / "data" / "to_predict" / "patient1" / "series1"), n_slices=6, size=32)


FABRICATE = {"busi": _fabricate_busi, "datasets": _fabricate_datasets, "mosmed": _fabricate_mosmed}


@pytest.mark.slow
@pytest.mark.parametrize("group", RUN_GROUPS)
def test_documented_commands_run_as_written(group, tmp_path):
    """Each ``Run`` entry of ``group``, in manifest order, in one workspace: exit status 0 and its artefacts."""
    ws = tmp_path / "ws"
    _workspace(ws)
    FABRICATE[group](ws)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(ws), OMP_NUM_THREADS="1")
    for entry in [e for e in MANIFEST if isinstance(e, Run) and e.group == group]:
        command = fast(_substitute(entry.run or entry.command, {**GROUP_PLACEHOLDERS[group], **entry.subs}, str(ws)))
        proc = subprocess.run(["bash", "-c", command], cwd=ws, env=env, capture_output=True, text=True, timeout=900)
        where = f"{entry.doc}: `{entry.command}`\nran: {command}"
        assert proc.returncode == 0, (
            f"{where}\nexit status {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
        for path in entry.expect:
            assert (ws / path).exists(), f"{where}\ndid not write {path}"
        if entry.stdout:
            assert entry.stdout in proc.stdout + proc.stderr, f"{where}\ndid not print {entry.stdout!r}"

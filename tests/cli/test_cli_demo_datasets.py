"""``monai-rd demo --dataset``: each synthetic writer matches its bundle's indexer and the command line is right."""

import argparse
import json
import os

import pytest

from monai_rd.cli import demo
from monai_rd.experiments.demo import DEMO_DATASETS
from monai_rd.data import index_dataset
from monai_rd.experiments.demo import DemoSettings, bundle_command


def test_cli_lists_every_demo_dataset():
    assert tuple(sorted(DEMO_DATASETS)) == demo.DATASETS


def test_cli_defaults_are_the_demo_settings():
    # the CLI writes its defaults out so that --help imports nothing; they must be DemoSettings' own
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args([])
    assert {k: getattr(args, k) for k in DemoSettings._fields} == DemoSettings()._asdict()


@pytest.mark.parametrize("name", sorted(DEMO_DATASETS))
def test_demo_dataset_is_indexable_by_its_bundle(name, tmp_path):
    entry = DEMO_DATASETS[name]
    data = entry.writer(str(tmp_path / "data"), 8, 32, 0)
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--dataset", name, "--workdir", str(tmp_path)])
    settings = DemoSettings(**{k: getattr(args, k) for k in DemoSettings._fields})
    cmd = bundle_command(settings, data, str(tmp_path / "out"), "rd", str(tmp_path / "teacher.pt"))
    assert cmd[cmd.index("--teacher_weights") + 1] == str(tmp_path / "teacher.pt")
    config_file = cmd[cmd.index("--config_file") + 1]
    assert config_file.endswith(os.path.join(entry.bundle, "configs", "train.json"))
    with open(config_file) as f:
        dataset_format = json.load(f).get("dataset_format", "busi")  # rd_busi calls index_busi directly
    datalist = index_dataset(dataset_format, data)
    assert datalist["training"] and datalist["validation"]


def test_unknown_dataset_refused():
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--dataset", "mnist"])

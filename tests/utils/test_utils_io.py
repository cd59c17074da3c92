"""Atomic writes leave files with the usual permissions (umask), exported models included."""

import os
import stat

import pytest
import torch

from monai_rd.deploy.export import to_onnx, to_torchscript
from monai_rd.utils import atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield 0o644
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_follows_the_umask(tmp_path, umask_022):
    path = atomic_write_text(tmp_path / "a.txt", "x")
    assert _mode(path) == umask_022 and open(path).read() == "x"
    os.umask(0o077)
    assert _mode(atomic_write_text(tmp_path / "b.txt", "y")) == 0o600


def test_exported_models_are_readable_by_others(tmp_path, umask_022):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    example = torch.zeros(2, 3, 16, 16)
    ts = to_torchscript(model, tmp_path / "m.ts")
    onnx_path = to_onnx(model, tmp_path / "m.onnx", example)
    assert _mode(ts) == _mode(onnx_path) == umask_022
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.ts"]  # no temporary file left behind
    assert torch.allclose(torch.jit.load(ts)(example), model(example))

"""Hostile checkpoints: mismatched, tampered, and pickles that would execute code."""

import os
import pickle

import pytest
import torch

from monai_rd.handlers import resume_checkpoint
from monai_rd.networks import StudentClassifier, WeightsMismatchError, load_weights, read_state_dict


class _Evil:
    """Unpickling this runs ``open(marker, 'w')``: proof that code executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_would_execute_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Evil(str(marker))}, path)
    with pytest.raises(RuntimeError, match=r"evil\.pt.*weights_only=True"):
        read_state_dict(path)
    assert not marker.exists()
    # the same file under a resume-checkpoint name is refused too, naming it
    os.replace(path, tmp_path / "resume_checkpoint_epoch=1.pt")
    with pytest.raises(RuntimeError, match=r"resume_checkpoint_epoch=1\.pt"):
        resume_checkpoint(str(tmp_path), resume=True)
    assert not marker.exists()


def test_raw_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "raw.pth"
    with open(path, "wb") as f:
        pickle.dump(_Evil(str(marker)), f)
    with pytest.raises(RuntimeError, match=r"raw\.pth"):
        read_state_dict(path)
    assert not marker.exists()


def test_mismatched_checkpoint_lists_the_keys(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(StudentClassifier("resnet18", 5).state_dict(), path)  # 5 classes, the model has 3
    with pytest.raises(WeightsMismatchError) as err:
        load_weights(StudentClassifier("resnet18", 3), path)
    assert "other.pt" in str(err.value) and "head" in str(err.value)


def test_tampered_checkpoint_bytes(tmp_path):
    path = tmp_path / "tampered.pt"
    torch.save(StudentClassifier("resnet18", 3).state_dict(), path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = os.urandom(64)  # flipped bytes inside the zip archive
    path.write_bytes(bytes(data[: len(data) - 100]))  # and truncated
    with pytest.raises(RuntimeError, match=r"tampered\.pt"):
        read_state_dict(path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(RuntimeError, match=r"list\.pt.*does not hold a state dict"):
        read_state_dict(path)


def test_no_weights_file_loads_nothing():
    # weights=None means "initial weights" for every builder; load_weights is where that is decided
    net = torch.nn.Linear(3, 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert load_weights(net, None) is net
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())

"""multi_gpu_train.json launched by torchrun: 2 CPU processes (gloo), rank-0-only checkpoint and MLflow."""

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import BUNDLES

pytestmark = pytest.mark.slow  # every test here runs a bundle or a server end to end

CONFIGS = os.path.join(BUNDLES, "rd_busi", "configs")


def test_torchrun_two_processes_train_the_bundle(busi_dir, tmp_path):
    out = tmp_path / "out"
    config = f"['{CONFIGS}/train.json','{CONFIGS}/multi_gpu_train.json']"
    cmd = [
        shutil.which("torchrun"), "--nproc_per_node=2", "-m", "monai.bundle", "run", "--config_file", config,
        "--dataset_dir", busi_dir, "--output_dir", str(out), "--max_epochs", "2", "--image_size", "32",
        "--batch_size", "4", "--num_workers", "0", "--teacher", "torchvision:resnet18", "--teacher_weights", "random", "--progress_bar", "False",
        "--bundle_root", os.path.join(BUNDLES, "rd_busi"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (out / "model.pt").exists()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlruns.db")
    runs = client.search_runs([client.get_experiment_by_name("rd_busi").experiment_id])
    assert len(runs) == 1  # rank 0 only
    # the training split over 2 ranks (DistributedSampler pads to an even split), batch 4 per rank, drop_last
    per_epoch = -(-int(runs[0].data.params["num_train"]) // 2) // 4
    history = client.get_metric_history(runs[0].info.run_id, "weight_kd")
    assert per_epoch >= 1 and sorted(m.step for m in history) == list(range(1, 2 * per_epoch + 1))
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "val_cka")) == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize(
    "method", ["kd", "crd", "direct_reprogramming", "student", "teacher_linear", "rd+teacher_warmup"]
)
def test_torchrun_trains_every_method_with_stage1_and_ranks_agree(busi_dir, tmp_path, method):
    """multi_gpu_train.json adds to train.json's initialize/run: stage 1 runs (under DDP) before the main stage,
    and every trainable parameter (network, loss, stage-1 branch) ends identical on both ranks. RD's teacher-branch
    warm-up is a stage 1 whose ``g`` and ``h`` the main stage trains on: two DDP wrappers share them."""
    method, _, warmup = method.partition("+")
    out = tmp_path / "out"
    probe = tmp_path / "per_rank.json"  # a third overlay, added like multi_gpu_train.json adds to train.json
    probe.write_text(json.dumps({"+run": [
        "$torch.save([p.detach().cpu() for p in @method_def.parameters() + @method_def.stage1_parameters()], "
        "@output_dir + '/params_rank%d.pt' % torch.distributed.get_rank())",
        "$torch.save(@stage1::trainer.state.epoch if @stage1_needed else 0, "
        "@output_dir + '/stage1_rank%d.pt' % torch.distributed.get_rank())",
    ]}))  # fmt: skip
    config = f"['{CONFIGS}/train.json','{CONFIGS}/multi_gpu_train.json','{probe}']"
    cmd = [
        shutil.which("torchrun"), "--nproc_per_node=2", "-m", "monai.bundle", "run", "--config_file", config,
        "--dataset_dir", busi_dir, "--output_dir", str(out), "--max_epochs", "1", "--stage1_epochs", "1",
        "--image_size", "32", "--batch_size", "4", "--num_workers", "0", "--teacher", "torchvision:resnet18", "--teacher_weights", "random",
        "--progress_bar", "False", "--method", method, "--bundle_root", os.path.join(BUNDLES, "rd_busi"),
    ] + (["--teacher_warmup", "true"] if warmup else [])  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    import torch

    ranks = [torch.load(out / f"params_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0] and len(ranks[0]) == len(ranks[1])
    for a, b in zip(*ranks):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    stage1 = [torch.load(out / f"stage1_rank{r}.pt", weights_only=True) for r in (0, 1)]  # epochs stage 1 ran
    assert stage1 == ([1, 1] if method in ("kd", "direct_reprogramming") or warmup else [0, 0])  # two-stage methods

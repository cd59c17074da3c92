"""multi_gpu_train.json launched by torchrun: 2 CPU processes (gloo), rank-0-only checkpoint and MLflow."""

import os
import shutil
import subprocess

from tests.conftest import BUNDLES

CONFIGS = os.path.join(BUNDLES, "rd_busi", "configs")


def test_torchrun_two_processes_train_the_bundle(busi_dir, tmp_path):
    out = tmp_path / "out"
    config = f"['{CONFIGS}/train.json','{CONFIGS}/multi_gpu_train.json']"
    cmd = [
        shutil.which("torchrun"), "--nproc_per_node=2", "-m", "monai.bundle", "run", "--config_file", config,
        "--dataset_dir", busi_dir, "--output_dir", str(out), "--max_epochs", "2", "--image_size", "32",
        "--batch_size", "4", "--num_workers", "0", "--teacher", "torchvision:resnet18",
        "--teacher_weights", "random", "--progress_bar", "False",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (out / "model.pt").exists()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlruns.db")
    runs = client.search_runs([client.get_experiment_by_name("rd_busi").experiment_id])
    assert len(runs) == 1  # rank 0 only
    # 24 training images over 2 ranks, batch 4 per rank: 3 iterations per epoch
    history = client.get_metric_history(runs[0].info.run_id, "weight_kd")
    assert sorted(m.step for m in history) == list(range(1, 7))
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "val_cka")) == [1, 2]

"""Crash-safe training: atomic checkpoint files, RNG/best-metric state, and a SIGKILL-then-resume bundle run."""

import json
import os
import random
import sys

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from monai_rd.handlers import (
    AtomicCheckpointSaver,
    BestMetricState,
    EpochSeed,
    NetworkState,
    RNGState,
    latest_checkpoint,
    resume_checkpoint,
    resume_objects,
)
from tests.helpers.forkserver import run as run_python
from tests.conftest import BUNDLES, REPO, run_bundle

TRAIN = os.path.join(BUNDLES, "rd_busi", "configs", "train.json")


def test_rng_state_round_trip_through_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = RNGState().state_dict()
    path = tmp_path / "rng.pt"
    torch.save({"rng": state}, path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    RNGState().load_state_dict(torch.load(path, weights_only=True)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_atomic_saver_switches_every_disk_saver_to_atomic(tmp_path):
    net = torch.nn.Linear(2, 2)
    saver = AtomicCheckpointSaver(
        str(tmp_path), {"net": net}, save_final=True, save_key_metric=True, key_metric_filename="model.pt",
        save_interval=1,
    )  # fmt: skip
    for c in (saver._final_checkpoint, saver._key_metric_checkpoint, saver._interval_checkpoint):
        assert c.save_handler._atomic is True


class _Exploding:
    """A checkpoint entry whose serialisation dies half-way, as a write interrupted by an exception."""

    def state_dict(self):
        return {"big": torch.zeros(1000), "bad": (lambda: 0)}  # lambdas cannot be pickled

    def load_state_dict(self, state):
        pass


def test_failed_write_leaves_the_previous_file_intact(tmp_path):
    net = torch.nn.Linear(2, 2)
    engine = Engine(lambda e, b: None)
    ok = AtomicCheckpointSaver(
        str(tmp_path), {"net": net, "rng": RNGState()}, file_prefix="resume", save_interval=1, n_saved=1
    )
    ok.attach(engine)
    engine.run([0], max_epochs=1)
    first = latest_checkpoint(str(tmp_path))
    assert first.endswith("resume_checkpoint_epoch=1.pt")
    before = open(first, "rb").read()
    bad = AtomicCheckpointSaver(
        str(tmp_path), {"net": net, "rng": RNGState(), "x": _Exploding()}, file_prefix="resume", save_interval=1
    )
    engine2 = Engine(lambda e, b: None)
    bad.attach(engine2)
    with pytest.raises(Exception):
        engine2.run([0, 1], max_epochs=2)
    # no partial file is left under a checkpoint name, no temp file stays behind, the good file is unchanged
    assert sorted(os.listdir(tmp_path)) == ["resume_checkpoint_epoch=1.pt"]
    assert open(first, "rb").read() == before


def test_partial_temp_file_of_a_killed_write_is_never_loaded(tmp_path):
    good = tmp_path / "resume_checkpoint_epoch=2.pt"
    torch.save({"network": {"w": torch.ones(3)}}, good)
    data = good.read_bytes()
    # what a SIGKILL during AtomicCheckpointSaver's write leaves: a truncated tmp* file in the same folder
    (tmp_path / "tmpk3x9_a1b").write_bytes(data[: len(data) // 2])
    (tmp_path / "tmpzz.pt").write_bytes(data[:10])
    assert latest_checkpoint(str(tmp_path)) == str(good)
    assert resume_checkpoint(str(tmp_path), resume=True) == str(good)
    assert resume_checkpoint(str(tmp_path), resume=False) is None


def test_unreadable_checkpoint_under_a_checkpoint_name_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "resume_checkpoint_epoch=3.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RuntimeError, match=r"resume_checkpoint_epoch=3\.pt"):
        resume_checkpoint(str(tmp_path), resume=True)


def test_resume_without_checkpoint_starts_from_scratch(tmp_path):
    assert resume_checkpoint(str(tmp_path), resume=True) is None


def test_best_metric_state_restores_evaluator_and_best_model_record(tmp_path):
    evaluator = Engine(lambda e, b: None)
    evaluator.state.best_metric, evaluator.state.best_metric_epoch = 0.75, 4
    net = torch.nn.Linear(2, 2)
    saver = AtomicCheckpointSaver(str(tmp_path), {"m": net}, save_key_metric=True, key_metric_filename="model.pt",
                                  key_metric_name="acc")  # fmt: skip
    saver.attach(evaluator)
    saver._key_metric_checkpoint._saved.append(saver._key_metric_checkpoint.Item(0.75, "model.pt"))
    state = BestMetricState(evaluator).state_dict()
    torch.save({"best": state}, tmp_path / "b.pt")
    fresh = Engine(lambda e, b: None)
    fresh.state.best_metric, fresh.state.best_metric_epoch = -1, -1
    saver2 = AtomicCheckpointSaver(str(tmp_path), {"m": net}, save_key_metric=True, key_metric_filename="model.pt",
                                   key_metric_name="acc")  # fmt: skip
    saver2.attach(fresh)
    BestMetricState(fresh).load_state_dict(torch.load(tmp_path / "b.pt", weights_only=True)["best"])
    assert (fresh.state.best_metric, fresh.state.best_metric_epoch) == (0.75, 4)
    assert [(i.priority, i.filename) for i in saver2._key_metric_checkpoint._saved] == [(0.75, "model.pt")]


def test_epoch_seed_depends_only_on_seed_and_epoch():
    from torch.utils.data import DataLoader

    def permutations(start_epoch, epochs, noise):
        loader = DataLoader(list(range(10)), batch_size=10, shuffle=True)
        seen = {}
        engine = Engine(lambda e, b: seen.__setitem__(e.state.epoch, b.tolist()))
        EpochSeed(7).attach(engine)

        @engine.on(Events.STARTED)
        def _jump(e):  # what a resume does: restore the engine position, RNG left in whatever state
            e.state.epoch, e.state.iteration = start_epoch, start_epoch
            torch.manual_seed(noise)

        engine.run(loader, max_epochs=epochs)
        return seen

    full = permutations(0, 4, noise=1)
    resumed = permutations(2, 4, noise=2)
    assert {e: full[e] for e in (3, 4)} == resumed
    assert full[1] != full[2]


def _params(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
# hint: its loss trains a regressor, which must resume too; kd: a stage 1 (the teacher probe) that is not re-run
@pytest.mark.parametrize("method", ["rd", "hint", "kd"])
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(busi_dir, tmp_path, method):
    common = dict(dataset_dir=busi_dir, max_epochs=3, image_size=32, batch_size=8, num_workers=0,
                  progress_bar=False, teacher="torchvision:resnet18", teacher_weights="random",
                  student="resnet18", method=method)  # fmt: skip
    env = {"OMP_NUM_THREADS": "1"}
    full, crashed = str(tmp_path / "full"), str(tmp_path / "crashed")
    run_bundle(TRAIN, output_dir=full, env=env, **common)

    # batch 8, drop_last: the kill lands after the first iteration of epoch 2, in its middle
    per_epoch = len(json.load(open(os.path.join(full, "datalist.json")))["training"]) // 8
    assert per_epoch >= 2
    kill_cfg = tmp_path / "kill.json"
    run = json.load(open(TRAIN))["run"]  # the bundle's own run list (stage 1 included), with the kill attached
    at = run.index("$@train::trainer.run()")  # then the end-of-run report (monai_rd.bundle.report_training_done)
    run[at:at] = ["$from tests.helpers.resume_kill import KillAt", f"$KillAt({per_epoch + 1}).attach(@train::trainer)"]
    kill_cfg.write_text(json.dumps({"run": run}))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"['{TRAIN}','{kill_cfg}']"]
    for k, v in dict(common, output_dir=crashed).items():
        cmd += [f"--{k}", str(v)]
    proc = run_python(cmd, cwd=REPO, timeout=600, env={**os.environ, **env})
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert sorted(f for f in os.listdir(crashed) if f.startswith("resume_")) == ["resume_checkpoint_epoch=1.pt"]
    # a write interrupted by the kill would have left only this (a truncated temp file); it must be ignored
    data = open(os.path.join(crashed, "resume_checkpoint_epoch=1.pt"), "rb").read()
    with open(os.path.join(crashed, "tmpq7w2e9r0"), "wb") as f:
        f.write(data[: len(data) // 3])

    resumed = run_bundle(TRAIN, output_dir=crashed, env=env, resume=True, **common)
    assert "resume_checkpoint_epoch=1.pt" in resumed.stdout + resumed.stderr

    a, b = (
        _params(os.path.join(full, "resume_checkpoint_epoch=3.pt")),
        _params(os.path.join(crashed, "resume_checkpoint_epoch=3.pt")),
    )
    assert a["trainer"]["iteration"] == b["trainer"]["iteration"] == 3 * per_epoch
    assert b["trainer"]["epoch_length"] == per_epoch
    assert a["network"]["frozen_sha256"] == b["network"]["frozen_sha256"]
    assert a["network"]["frozen_entries"] > 0  # rd, hint and kd each hold a frozen ResNet-18 teacher
    assert a["network"]["state"].keys() == b["network"]["state"].keys()
    for k in a["network"]["state"]:
        assert torch.equal(a["network"]["state"][k], b["network"]["state"][k]), k
    assert ("loss" in a) == (method == "hint") and a.get("loss", {}).keys() == b.get("loss", {}).keys()
    for k in a.get("loss", {}):
        assert torch.equal(a["loss"][k], b["loss"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k
    assert a["best"]["best_metric"] == b["best"]["best_metric"]
    assert a["best"]["best_metric_epoch"] == b["best"]["best_metric_epoch"]
    ma, mb = _params(os.path.join(full, "model.pt")), _params(os.path.join(crashed, "model.pt"))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    # the uninterrupted run's validation metrics equal the resumed run's for every epoch it ran
    from mlflow.tracking import MlflowClient

    def logged(out, keys):
        """Every (key, step, value) logged under ``keys`` in any run of the store, repeats included."""
        client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlruns.db")
        exp = client.get_experiment_by_name("rd_busi")
        return [
            (key, m.step, m.value)
            for run in client.search_runs([exp.experiment_id])
            for key in keys
            for m in client.get_metric_history(run.info.run_id, key)
        ]

    def val_history(out):
        return {(key, step): value for key, step, value in logged(out, ("val_accuracy", "val_cka"))}

    def stage1_steps(out):
        return sorted(step for _, step, _ in logged(out, ("stage1_val_accuracy",)))

    # a stage 1 ran once, before the crash; the resumed run takes its weights from the checkpoint
    assert stage1_steps(crashed) == stage1_steps(full) == ([1, 2, 3] if method == "kd" else [])
    ha, hb = val_history(full), val_history(crashed)
    assert set(ha) == {(k, s) for k in ("val_accuracy", "val_cka") for s in (1, 2, 3)}
    for key in ha:
        if key in hb:
            assert hb[key] == pytest.approx(ha[key], abs=1e-6), key
    assert ("val_accuracy", 3) in hb and ("val_accuracy", 2) in hb


def test_resume_checkpoint_has_the_same_keys_under_ddp_and_alone(tmp_path):
    """A resume checkpoint written under DDP (here a real gloo group of one) holds the method network and its loss
    under the keys of a single-process run, so either can resume the other."""
    import socket

    import torch.distributed as dist

    from monai_rd.methods import build_method
    from monai_rd.networks import StudentClassifier, build_teacher, distributed_network

    torch.manual_seed(0)
    method = build_method("hint", build_teacher("torchvision:resnet18", "random"), StudentClassifier("resnet18", 3),
                          3, image_size=32, num_data=8, batch_size=2)  # fmt: skip
    opt = torch.optim.SGD(method.parameters(), lr=0.1)
    alone = resume_objects(Engine(lambda e, b: None), method.network, opt, loss=method.loss)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        ddp = distributed_network(method.network, method.loss)
        under_ddp = resume_objects(Engine(lambda e, b: None), ddp, opt, loss=method.loss)
    finally:
        dist.destroy_process_group()
    assert under_ddp["network"].network is method.network and under_ddp["loss"] is method.loss
    assert under_ddp["network"].state_dict()["state"].keys() == alone["network"].state_dict()["state"].keys()


def test_cka_memory_resumes_through_a_weights_only_checkpoint(tmp_path):
    """RD's CKA memory is in the resume checkpoint: after a save and load, the next step's CKA equals the
    uninterrupted loss's (a fresh loss, with an empty memory, gives another value); no memory, no key."""
    from ignite.engine import Engine
    from monai.handlers import CheckpointLoader

    from monai_rd.losses import RDLoss

    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 6, generator=g), torch.randn(8, 5, generator=g)) for _ in range(3)]
    z, target = torch.zeros(8, 3), torch.zeros(8, dtype=torch.long)

    def step(loss, b):
        return float(loss({"f_T": b[0], "f_S": b[1], "z_T": z, "z_S": z}, target)["cka_value"])

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    running = RDLoss(cka_memory=16, gather_distributed=False)
    assert "cka_memory" not in resume_objects(
        Engine(lambda e, b: None), net, opt, loss=RDLoss(gather_distributed=False)
    )
    for b in batches[:2]:
        step(running, b)
    objects = resume_objects(Engine(lambda e, b: None), net, opt, loss=running)
    path = str(tmp_path / "resume_checkpoint_epoch=1.pt")
    torch.save({k: v.state_dict() for k, v in objects.items()}, path)

    resumed = RDLoss(cka_memory=16, gather_distributed=False)
    trainer = Engine(lambda e, b: None)
    CheckpointLoader(load_path=path, load_dict=resume_objects(trainer, net, opt, loss=resumed)).attach(trainer)
    trainer.run([0], max_epochs=1)
    fresh = RDLoss(cka_memory=16, gather_distributed=False)
    expected = step(running, batches[2])
    assert step(resumed, batches[2]) == pytest.approx(expected, abs=1e-7)
    assert step(fresh, batches[2]) != pytest.approx(expected, abs=1e-3)


def _rd(teacher_seed: int = 0):
    from monai_rd.methods import build_method
    from monai_rd.networks import StudentClassifier, build_teacher

    torch.manual_seed(teacher_seed)
    teacher = build_teacher("torchvision:resnet18", "random")
    return build_method("rd", teacher, StudentClassifier("resnet18", 3, init_seed=0), 3, image_size=32, num_data=8,
                        batch_size=2).network  # fmt: skip


def test_network_state_leaves_the_frozen_teacher_out_and_checks_it_on_resume(tmp_path):
    """The resume checkpoint holds every trained entry and the frozen teacher's digest, not its weights; it loads
    (``weights_only=True``) into a network built with the same teacher, and is refused, with what to do, under
    another one."""
    network = _rd()
    with torch.no_grad():
        for p in network.student.parameters():
            p.add_(0.5)  # "trained" weights, unlike a fresh build's
    full = network.state_dict()
    teacher_keys = {k for k in full if k.startswith("teacher.")}
    assert teacher_keys and all(not p.requires_grad for p in network.teacher.parameters())
    path = tmp_path / "resume.pt"
    torch.save({"network": NetworkState(network).state_dict()}, path)
    saved = torch.load(path, weights_only=True)["network"]
    assert set(saved["state"]) == set(full) - teacher_keys and saved["frozen_entries"] == len(teacher_keys)
    all_bytes = sum(v.numel() * v.element_size() for v in full.values())
    kept_bytes = sum(v.numel() * v.element_size() for v in saved["state"].values())
    assert kept_bytes < 0.6 * all_bytes  # the ResNet-18 teacher is about half of this RD network

    fresh = _rd()  # the same teacher, a student not yet trained
    NetworkState(fresh).load_state_dict(saved)
    assert all(torch.equal(fresh.state_dict()[k], full[k]) for k in full)
    with pytest.raises(RuntimeError, match="another frozen teacher.*teacher_weights of the interrupted run"):
        NetworkState(_rd(teacher_seed=1)).load_state_dict(saved)
    saved_without = dict(saved, state={k: v for k, v in saved["state"].items() if not k.startswith("student.head")})
    with pytest.raises(RuntimeError, match=r"missing \['student.head.bias', 'student.head.weight'\]"):
        NetworkState(_rd()).load_state_dict(saved_without)
    # a checkpoint written with the whole network (before NetworkState) still resumes
    old = _rd()
    NetworkState(old).load_state_dict(full)
    assert all(torch.equal(old.state_dict()[k], full[k]) for k in full)


def test_network_state_keeps_a_teacher_with_any_trainable_parameter():
    """A teacher that trains anything (LoRA adapters, a fine-tuned layer) is not frozen: all of it is kept."""
    network = _rd()
    next(network.teacher.parameters()).requires_grad_(True)
    state = NetworkState(network).state_dict()
    assert state["frozen_entries"] == 0 and set(state["state"]) == set(network.state_dict())

"""Every method trains through rd_busi's train.json (1 epoch, 32 px, fabricated BUSI) and saves what it deploys.

All methods run in this one process through MONAI's ConfigParser, exactly as ``monai.bundle run`` resolves the
bundle (the imports are paid once); two of them also run through the real CLI (``run_bundle``) with ``--method``.
"""

import os

import pytest
import torch

from tests.conftest import BUNDLES, run_bundle

pytestmark = pytest.mark.slow  # every test here runs a bundle or a server end to end

TRAIN = os.path.join(BUNDLES, "rd_busi", "configs", "train.json")
VIT = "timm:vit_tiny_patch16_224"
STUDENT_METHODS = ["student", "kd", "hint", "at", "vid", "crd", "semckd", "mgd", "norm", "direct_reprogramming", "rd"]
TEACHER_METHODS = ["teacher_linear", "teacher_finetune"]
VIT_METHODS = ["lora_kd", "vpt_kd"]


def _parser(busi_dir, out, method, **overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(TRAIN)
    settings = dict(
        dataset_dir=busi_dir, output_dir=str(out), max_epochs=1, stage1_epochs=1, image_size=32, batch_size=8,
        num_workers=0, progress_bar=False, teacher="torchvision:resnet18", teacher_weights="random", student="resnet18",
        method=method,
    )  # fmt: skip
    settings.update(overrides)
    for key, value in settings.items():
        parser[key] = value
    return parser


def _run(parser):
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("run")


@pytest.mark.parametrize("method", STUDENT_METHODS + TEACHER_METHODS + VIT_METHODS)
def test_method_trains_and_saves_its_deployable(method, busi_dir, tmp_path):
    from monai_rd.methods import build_deployable
    from monai_rd.networks import StudentClassifier, TeacherClassifier

    teacher = VIT if method in VIT_METHODS else "torchvision:resnet18"
    options = {}
    if method in ("at", "mgd"):  # at 32 px ResNet's layer4 is 1x1, where attention maps are trivially equal
        options = {"teacher_layers": "backbone.model.layer3", "student_layers": "backbone.model.layer3"}
    parser = _parser(busi_dir, tmp_path, method, teacher=teacher, method_options=options)
    _run(parser)
    trainer = parser.get_parsed_content("train::trainer")
    steps = len(parser.get_parsed_content("datalist")["training"]) // 8  # drop_last, batch 8
    assert steps >= 1 and trainer.state.epoch == 1 and trainer.state.iteration == steps
    out = trainer.state.output[0] if isinstance(trainer.state.output, list) else trainer.state.output
    assert torch.isfinite(torch.as_tensor(out["loss"])).all()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    if method in TEACHER_METHODS:
        deployable = parser.get_parsed_content("network").deployable()
        assert isinstance(deployable, TeacherClassifier) and any(k.startswith("encoder.") for k in state)
        deployable.load_state_dict(state, strict=True)
    else:  # the deployable student alone: no teacher, reprogrammer, prompt or LoRA weights
        StudentClassifier("resnet18", 3).load_state_dict(state, strict=True)
    # what evaluate/inference build to load it
    build_deployable(method, "resnet18", teacher, 3).load_state_dict(state, strict=True)
    stage1 = parser.get_parsed_content("stage1::trainer")
    assert (stage1 is not None) == (method in ("kd", "direct_reprogramming", "lora_kd", "vpt_kd"))
    if stage1 is not None:
        assert stage1.state.epoch == 1 and stage1.state.iteration == steps


def test_student_method_never_builds_a_teacher(busi_dir, tmp_path):
    from monai_rd.networks import FrozenTeacher

    parser = _parser(busi_dir, tmp_path, "student", teacher="no-such-teacher")  # building it would fail
    assert parser.get_parsed_content("teacher_def") is None
    network = parser.get_parsed_content("network")
    assert not any(isinstance(m, FrozenTeacher) for m in network.modules())


def test_rd_with_its_distillation_terms_at_zero_trains_the_student_alones_student(busi_dir, tmp_path):
    """Methods compared at one seed start from one student (``student_def``'s ``init_seed``) and see one data order
    (``EpochSeed``), so what RD adds to the student is its distillation alone: with KD and CKA at 0 (a closed
    distillation gate) RD's student is the student alone's, weight for weight."""
    trained = {}
    for method, overrides in (("student", {}), ("rd", {"loss_weights": {"kd": 0.0, "cka": 0.0}})):
        parser = _parser(busi_dir, tmp_path / method, method, max_epochs=2, **overrides)
        _run(parser)
        trained[method] = torch.load(tmp_path / method / "model.pt", weights_only=True)
    student, rd = trained["student"], trained["rd"]
    assert student.keys() == rd.keys()
    for key in student:
        torch.testing.assert_close(rd[key], student[key], rtol=1e-5, atol=1e-6, msg=key)


def test_stage1_trains_the_probe_before_kd_and_kd_keeps_it_frozen(busi_dir, tmp_path):
    parser = _parser(busi_dir, tmp_path, "kd", stage1_epochs=2)
    method = parser.get_parsed_content("method_def")
    probe = method.stage1_network.classifier.head
    student = method.network.student
    probe0 = probe.weight.detach().clone()
    student0 = student.head.weight.detach().clone()
    assert not any(p is probe.weight for p in method.parameters())  # the main optimiser never sees the probe

    parser.get_parsed_content("stage1::trainer").run()
    probe1 = probe.weight.detach().clone()
    assert not torch.equal(probe0, probe1)  # stage 1 trained the probe ...
    assert torch.equal(student0, student.head.weight)  # ... and nothing of the student

    parser.get_parsed_content("train::trainer").run()
    assert torch.equal(probe1, probe.weight)  # KD reads the trained probe, frozen
    assert not torch.equal(student0, student.head.weight)


def test_rd_teacher_warmup_trains_g_and_h_first_then_co_training_trains_them_on(busi_dir, tmp_path):
    parser = _parser(busi_dir, tmp_path / "off", "rd")  # the bundles' default: no warm-up (docs/methods.md)
    assert parser.get_parsed_content("method_def").stage1 is None and not parser.get_parsed_content("stage1_needed")
    parser = _parser(busi_dir, tmp_path, "rd", stage1_epochs=2, teacher_warmup=True)
    method = parser.get_parsed_content("method_def")
    assert not method.stage1.frozen
    net = method.network
    g, h, backbone = net.reprogrammer, net.head, net.student.backbone

    def snapshot():
        return [torch.cat([p.detach().flatten().clone() for p in m.parameters()]) for m in (g, h, backbone)]

    g0, h0, s0 = snapshot()
    parser.get_parsed_content("stage1::trainer").run()
    g1, h1, s1 = snapshot()
    assert not torch.equal(g0, g1) and not torch.equal(h0, h1)  # the warm-up trained the teacher branch ...
    assert torch.equal(s0, s1)  # ... and not the student's backbone
    parser.get_parsed_content("train::trainer").run()
    g2, h2, s2 = snapshot()
    assert not torch.equal(g1, g2) and not torch.equal(h1, h2) and not torch.equal(s1, s2)  # co-training trains all


def test_rd_reprogrammer_lr_scale_reaches_both_optimizers_of_the_bundle(busi_dir, tmp_path):
    plain = _parser(busi_dir, tmp_path / "plain", "rd", learning_rate=0.01)
    assert [g["lr"] for g in plain.get_parsed_content("optimizer").param_groups] == [0.01]  # one group, as before
    parser = _parser(busi_dir, tmp_path, "rd", learning_rate=0.01, teacher_warmup=True, reprogrammer_lr_scale=0.1)
    g_ids = {id(p) for p in parser.get_parsed_content("method_def").network.reprogrammer.parameters()}
    for key in ("optimizer", "stage1::optimizer"):
        groups = parser.get_parsed_content(key).param_groups
        assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.001)], key
        assert {id(p) for p in groups[1]["params"]} == g_ids, key
    assert parser.get_parsed_content("run_params")["reprogrammer_lr_scale"] == 0.1  # logged with the run
    _run(parser)  # both stages train with the scaled groups, end to end
    assert (tmp_path / "model.pt").is_file()


def test_rd_co_training_off_is_direct_reprogramming(busi_dir, tmp_path):
    parser = _parser(busi_dir, tmp_path, "rd", method_options={"co_training": False, "use_cka": False})
    method = parser.get_parsed_content("method_def")
    assert method.stage1 is not None and method.loss_weights["cka"] == 0.0 and "ce_teacher" not in method.loss_weights


@pytest.mark.parametrize("method", ["crd"])
def test_cli_method_flag(method, busi_dir, tmp_path):
    run_bundle(
        TRAIN, dataset_dir=busi_dir, output_dir=tmp_path, max_epochs=1, image_size=32, batch_size=8, num_workers=0,
        progress_bar=False, teacher="torchvision:resnet18", teacher_weights="random", student="resnet18", method=method,
    )  # fmt: skip
    assert (tmp_path / "model.pt").is_file()


@pytest.mark.parametrize("bundle,method", [("rd_chestxray", "kd"), ("rd_isic", "hint")])
def test_other_bundles_take_the_method(bundle, method, tmp_path):
    """rd_chestxray is multi-label: every method's supervised terms are BCE there (stage 1 included)."""
    from monai.bundle import ConfigParser

    from monai_rd.data import synthetic

    make = {
        "rd_chestxray": lambda d: synthetic.make_chestxray14_like(d, n_patients=12, size=32),
        "rd_isic": lambda d: synthetic.make_isic2018_like(d, n_per_class=4, size=32),
    }[bundle]
    parser = ConfigParser()
    parser.read_config(os.path.join(BUNDLES, bundle, "configs", "train.json"))
    settings = dict(
        dataset_dir=make(str(tmp_path / "data")), output_dir=str(tmp_path / "out"), max_epochs=1, stage1_epochs=1,
        image_size=32, batch_size=4, num_workers=0, progress_bar=False, teacher="torchvision:resnet18",
        teacher_weights="random", method=method,
    )  # fmt: skip
    for key, value in settings.items():
        parser[key] = value
    _run(parser)
    method_def = parser.get_parsed_content("method_def")
    multi_label = bundle == "rd_chestxray"
    assert method_def.loss.multi_label is multi_label
    if method_def.stage1 is not None:
        assert method_def.stage1.loss.multi_label is multi_label
        assert parser.get_parsed_content("stage1::trainer").state.epoch == 1
    assert (tmp_path / "out" / "model.pt").is_file()


def test_evaluate_a_teacher_reference_with_build_deployable(busi_dir, tmp_path):
    """teacher_linear saves teacher + head; evaluate.json scores it when its network is overridden."""
    _run(_parser(busi_dir, tmp_path, "teacher_linear"))
    run_bundle(
        [TRAIN, os.path.join(BUNDLES, "rd_busi", "configs", "evaluate.json")], output_dir=tmp_path,
        datalist_key="validation", num_workers=0,
        network="$monai_rd.methods.build_deployable('teacher_linear', @student, 'torchvision:resnet18', "
        "@num_classes).to(@device)",
    )  # fmt: skip
    assert (tmp_path / "eval" / "validation" / "metrics.csv").is_file()


@pytest.mark.slow
def test_stage1_is_validated_stopped_early_restored_and_logged(busi_dir, tmp_path):
    """Equal terms: stage 1 is scored on the validation split every epoch, stops after ``stage1_patience`` epochs
    without improvement within ``stage1_epochs``, the best epoch's probe is restored, and its score is in MLflow."""
    from mlflow.tracking import MlflowClient

    parser = _parser(busi_dir, tmp_path, "kd", stage1_epochs=6, stage1_patience=1, learning_rate=0.5,
                     bundle_root=os.path.dirname(os.path.dirname(TRAIN)))  # fmt: skip
    _run(parser)
    stage1, evaluator = parser.get_parsed_content("stage1::trainer"), parser.get_parsed_content("stage1::evaluator")
    best = parser.get_parsed_content("stage1::best")
    assert 1 <= stage1.state.epoch <= 6 and best.best_epoch == evaluator.state.best_metric_epoch >= 1
    if stage1.state.epoch < 6:  # stopped early: patience 1 -> the epoch after the last improvement
        assert stage1.state.epoch == best.best_epoch + 1
    probe = parser.get_parsed_content("method_def").stage1_network.classifier.head
    torch.testing.assert_close(probe.weight.detach(), best.best["classifier.head.weight"])
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    (run,) = client.search_runs([client.get_experiment_by_name("rd_busi").experiment_id])
    history = client.get_metric_history(run.info.run_id, "stage1_val_accuracy")
    assert sorted(m.step for m in history) == list(range(1, stage1.state.epoch + 1))
    assert max(m.value for m in history) == pytest.approx(evaluator.state.best_metric)

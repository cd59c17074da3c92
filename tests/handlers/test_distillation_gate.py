"""The distillation gate: KD and CKA keep their scheduled weight only while the teacher branch classifies the validation
split at least as well as the student; accuracies checked against counts by hand, on real ignite engines."""

import io
import os

import pytest
import torch
from ignite.engine import Engine, Events

from monai_rd.handlers import DistillationGate, LossWeightSchedule, resume_objects
from monai_rd.handlers.distillation_gate import GATE_OPEN_METRIC, TEACHER_BRANCH_METRIC


class _Loss(torch.nn.Module):
    def __init__(self, multi_label: bool = False) -> None:
        super().__init__()
        self.weights = {"ce_teacher": 1.0, "ce_student": 1.0, "kd": 1.0, "cka": 1.0}
        self.multi_label = multi_label


def _validation_items(teacher_right: list[bool], student_right: list[bool], num_classes: int = 3) -> list[dict]:
    """Decollated evaluator output (``pred`` probabilities, one-hot ``label``, ``z_T`` logits), one dict per image:
    each branch's top class is the label where it is marked right, the next class otherwise."""
    items = []
    for i, (t_ok, s_ok) in enumerate(zip(teacher_right, student_right)):
        label = i % num_classes
        z_t = torch.zeros(num_classes)
        z_t[label if t_ok else (label + 1) % num_classes] = 3.0
        pred = torch.full((num_classes,), 0.1)
        pred[label if s_ok else (label + 1) % num_classes] = 0.8
        items.append({"pred": pred, "label": torch.nn.functional.one_hot(torch.tensor(label), num_classes), "z_T": z_t})
    return items


def _engines(validations: list[tuple[list[bool], list[bool]]], terms=("kd", "cka"), margin=0.0, batch=2):
    """A trainer (2 iterations an epoch) that validates after each epoch on ``validations[epoch - 1]``, in batches
    of ``batch`` images; returns (trainer, gate, weights seen per iteration)."""
    loss = _Loss()
    seen = []

    def train_step(engine, _):
        seen.append((engine.state.epoch, dict(loss.weights)))

    def eval_step(engine, batch_items):
        return batch_items

    trainer, evaluator = Engine(train_step), Engine(eval_step)
    trainer.loss_function = loss
    LossWeightSchedule({"kd": 0.5, "cka": 0.25}, loss_function=loss, schedule="warmup").attach(trainer)
    gate = DistillationGate(evaluator, terms=terms, margin=margin)
    gate.attach(trainer)

    @trainer.on(Events.EPOCH_COMPLETED)
    def validate(engine):
        items = _validation_items(*validations[engine.state.epoch - 1])
        evaluator.run([items[i : i + batch] for i in range(0, len(items), batch)])

    return trainer, gate, seen


def test_the_gate_closes_kd_and_cka_while_the_teacher_branch_is_worse_and_reopens_when_it_is_not():
    t, f = True, False
    validations = [
        ([t, t, f, f, f], [t, t, t, f, f]),  # teacher 2/5 < student 3/5: closed for epoch 2
        ([t, t, t, f, f], [t, t, t, f, f]),  # a tie keeps it open: open for epoch 3
        ([f, f, f, f, t], [t, t, t, t, t]),
    ]
    trainer, gate, seen = _engines(validations)
    logged = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: logged.append(dict(e.state.metrics)))  # as MLflow
    trainer.run([0, 1], max_epochs=3)
    assert [(m[TEACHER_BRANCH_METRIC], m[GATE_OPEN_METRIC]) for m in logged] == [
        (2 / 5, 0.0),
        (3 / 5, 1.0),
        (1 / 5, 0.0),
    ]
    assert [(h["epoch"], h["teacher_accuracy"], h["student_accuracy"], h["open"]) for h in gate.history] == [
        (1, 2 / 5, 3 / 5, False), (2, 3 / 5, 3 / 5, True), (3, 1 / 5, 1.0, False)]  # fmt: skip
    by_epoch = {}
    for epoch, weights in seen:
        by_epoch.setdefault(epoch, []).append(weights)
    assert all(w["kd"] == 0.5 and w["cka"] == 0.25 for w in by_epoch[1] + by_epoch[3])  # the schedule's weights
    assert all(w["kd"] == 0.0 and w["cka"] == 0.0 for w in by_epoch[2])
    assert all(w["ce_teacher"] == 1.0 and w["ce_student"] == 1.0 for e in by_epoch for w in by_epoch[e])
    assert gate.is_open is False


def test_a_margin_keeps_the_gate_open_for_a_teacher_branch_that_slightly_trails():
    t, f = True, False
    trainer, gate, _ = _engines([([t, t, t, f, f], [t, t, t, t, f])], margin=0.25)
    trainer.run([0, 1], max_epochs=1)
    assert gate.history[0]["open"] is True  # 3/5 >= 4/5 - 0.25


def test_without_terms_it_attaches_nothing_and_is_not_checkpointed():
    trainer, gate, seen = _engines([([False] * 3, [True] * 3)] * 2, terms=())
    trainer.run([0, 1], max_epochs=2)
    assert gate.history == [] and all(w["kd"] == 0.5 for _, w in seen)
    network = torch.nn.Linear(2, 2)
    objects = resume_objects(trainer, network, torch.optim.SGD(network.parameters(), lr=0.1), gate=gate)
    assert "distillation_gate" not in objects


def test_its_state_survives_a_resume_checkpoint_loaded_with_weights_only():
    t, f = True, False
    trainer, gate, _ = _engines([([f, f, f], [t, t, t])])
    trainer.run([0, 1], max_epochs=1)
    network = torch.nn.Linear(2, 2)
    objects = resume_objects(trainer, network, torch.optim.SGD(network.parameters(), lr=0.1), gate=gate)
    buffer = io.BytesIO()
    torch.save(objects["distillation_gate"].state_dict(), buffer)
    buffer.seek(0)
    _, fresh, _ = _engines([])
    assert fresh.is_open is True
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.is_open is False and fresh.history == gate.history


def test_refusals_name_what_is_wrong():
    loss = _Loss(multi_label=True)
    trainer, evaluator = Engine(lambda e, b: None), Engine(lambda e, b: b)
    trainer.loss_function = loss
    DistillationGate(evaluator, terms=("kd",)).attach(trainer)
    with pytest.raises(ValueError, match="multi-label"):
        trainer.run([0], max_epochs=1)
    trainer = Engine(lambda e, b: None)
    trainer.loss_function = _Loss()
    DistillationGate(evaluator, terms=("kd", "crd")).attach(trainer)
    with pytest.raises(KeyError, match=r"unknown loss terms \['crd'\]"):
        trainer.run([0], max_epochs=1)
    trainer = Engine(lambda e, b: None)
    evaluator = Engine(lambda e, b: [{"pred": torch.ones(2), "label": torch.tensor([0])}])  # a student-only output
    DistillationGate(evaluator, terms=("kd",)).attach(trainer)
    with pytest.raises(KeyError, match="z_T"):
        evaluator.run([0])


def test_the_rd_method_gates_kd_and_cka_only_when_asked_and_refuses_what_it_cannot_gate():
    from monai_rd.methods import build_method
    from monai_rd.networks import StudentClassifier

    def build(**options):  # a cached teacher (its feature shape alone): no teacher network is needed to build RD
        return build_method("rd", None, StudentClassifier("resnet18", 3), 3, teacher_feature_shape=(512,), **options)

    assert build().info["gated_terms"] == ()
    assert build(teacher_gate=True).info["gated_terms"] == ("kd", "cka")
    with pytest.raises(ValueError, match="multi-label"):
        build(teacher_gate=True, multi_label=True)
    with pytest.raises(ValueError, match="co_training=False"):
        build(teacher_gate=True, co_training=False)
    assert build(teacher_gate=True).info["gate_margin"] == 0.0
    assert build(teacher_gate=True, teacher_gate_margin=-0.01).info["gate_margin"] == -0.01
    with pytest.raises(ValueError, match="needs teacher_gate=True"):
        build(teacher_gate_margin=-0.01)
    with pytest.raises(ValueError, match=r"teacher_gate_margin is a difference of accuracies, in \(-1, 1\), got 2"):
        build(teacher_gate=True, teacher_gate_margin=2)


def test_the_bundle_builds_the_gate_with_the_methods_terms_and_margin(busi_dir, tmp_path):
    """The bundles' ``distillation_gate`` reads the gated terms and the margin from the method (no second place to
    set them): on by default (``teacher_gate`` 'auto') for single-label co-training, off with ``--teacher_gate false``,
    without co-training and on multi-label data, ties closing it with a negative ``teacher_gate_margin``."""
    from monai.bundle import ConfigParser

    from monai_rd.bundle import bundle_root
    from monai_rd.data import synthetic

    def gate(bundle="rd_busi", dataset_dir=busi_dir, **ids):
        parser = ConfigParser()
        parser.read_config(os.path.join(bundle_root(bundle), "configs", "train.json"))
        values = dict(dataset_dir=dataset_dir, output_dir=str(tmp_path / "out"), teacher="torchvision:resnet18",
                      teacher_weights="random", student="resnet18", image_size=32, **ids)  # fmt: skip
        for key, value in values.items():
            parser[key] = value
        return parser.get_parsed_content("distillation_gate")

    default = gate()
    assert default.terms == ("kd", "cka") and default.margin == 0.0
    assert not gate(teacher_gate=False).active
    assert gate(teacher_gate=True).terms == ("kd", "cka")
    assert not gate(method_options={"co_training": False}).active  # no co-trained branch to compare
    assert gate(method_options={"teacher_gate_margin": -0.01}).margin == -0.01
    synthetic.make_chestxray14_like(str(tmp_path / "cxr"), n_patients=12, size=32)
    assert not gate("rd_chestxray", str(tmp_path / "cxr")).active  # multi-label: 'auto' leaves it off

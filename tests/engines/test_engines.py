"""RDTrainer and RDEvaluator in-process on a tiny RDNet."""

import pytest
import torch
from monai.engines import IterationEvents
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_rd.engines import RDEvaluator, RDKeys, RDTrainer
from monai_rd.handlers import CKAMonitor, LossWeightSchedule
from monai_rd.losses import RD_TERMS, RDLoss
from monai_rd.networks import RDNet, StudentClassifier, build_teacher


def make_loader(n=8, batch=4, teacher_features=False):
    g = torch.Generator().manual_seed(0)
    data = []
    for i in range(0, n, batch):
        item = {"image": torch.rand(batch, 3, 32, 32, generator=g), "label": torch.arange(batch) % 3}
        if teacher_features:
            item["teacher_features"] = torch.randn(batch, 512, generator=g)
        data.append(item)
    return data


def make_trainer(network, loader, max_epochs=2):
    loss = RDLoss()
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-3)
    post = Compose([Activationsd("pred", softmax=True), AsDiscreted("label", to_onehot=3)])
    return RDTrainer(
        device="cpu",
        max_epochs=max_epochs,
        train_data_loader=loader,
        network=network,
        optimizer=optimizer,
        loss_function=loss,
        postprocessing=post,
        train_handlers=[LossWeightSchedule()],
    )


def test_trainer_step_outputs_every_term_and_weight_and_fires_model_completed():
    torch.manual_seed(0)
    network = RDNet(build_teacher("torchvision:resnet18"), StudentClassifier("resnet18", 3))
    trainer = make_trainer(network, make_loader())
    fired, outputs = [], []
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: fired.append(e.state.iteration))
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: outputs.append(e.state.output))
    teacher_before = [p.clone() for p in network.teacher.parameters()]
    student_before = [p.clone() for p in network.student.parameters()]
    trainer.run()
    assert fired == [1, 2, 3, 4]
    first = outputs[0][0]  # MONAI decollated the batch before MODEL_COMPLETED handlers
    for term in RD_TERMS:
        assert isinstance(first[RDKeys.TERM_PREFIX + term], float)
        assert isinstance(first[RDKeys.WEIGHT_PREFIX + term], float)
    assert 0.0 <= first[RDKeys.CKA] <= 1.0
    assert len(outputs[0]) == 4 and first["pred"].shape == (3,)
    assert [o[0]["weight_kd"] for o in outputs] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    # post-processing ran on the decollated output (softmax on the student logits)
    item = trainer.state.output[0]
    assert torch.allclose(item["pred"].sum(), torch.tensor(1.0)) and item["label"].shape == (3,)
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, network.teacher.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(student_before, network.student.parameters()))


def test_precomputed_teacher_features_replace_the_teacher():
    network = RDNet(None, StudentClassifier("resnet18", 3), teacher_feature_shape=(512,))
    trainer = make_trainer(network, make_loader(teacher_features=True), max_epochs=1)
    trainer.run()
    assert trainer.state.iteration == 2


def test_evaluator_scores_the_student_and_monitors_cka():
    network = RDNet(build_teacher("torchvision:resnet18"), StudentClassifier("resnet18", 3)).eval()
    evaluator = RDEvaluator(
        device="cpu", val_data_loader=make_loader(), network=network, key_val_metric={"val_cka": CKAMonitor()}
    )
    evaluator.run()
    assert 0.0 <= evaluator.state.metrics["val_cka"] <= 1.0
    x = make_loader()[-1]["image"]
    with torch.no_grad():
        expected = network.deployable()(x)
    preds = torch.stack([o["pred"] for o in evaluator.state.output])
    assert torch.allclose(preds, expected, atol=1e-5)


def test_non_finite_loss_stops_before_the_update_naming_term_and_iteration():
    network = RDNet(None, StudentClassifier("resnet18", 3), teacher_feature_shape=(512,))
    loader = make_loader(n=12, teacher_features=True)
    loader[2]["teacher_features"][0, 0] = float("nan")  # the third iteration's teacher features
    trainer = make_trainer(network, loader, max_epochs=1)
    snapshot = {}
    trainer.add_event_handler(
        IterationEvents.MODEL_COMPLETED,
        lambda e: snapshot.update({k: v.clone() for k, v in network.named_parameters()}),
    )
    with pytest.raises(FloatingPointError, match=r"'ce_teacher' is nan at epoch 1, iteration 3"):
        trainer.run()
    # the failing iteration stepped nothing: the parameters are those after iteration 2
    assert all(torch.equal(v, snapshot[k]) for k, v in network.named_parameters())

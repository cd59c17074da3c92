"""Loss-weight schedule, CKA monitor and output transforms, on real Ignite engines."""

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_rd.handlers import CKAMonitor, LossWeightSchedule, WeightSchedule, probs_and_class_indices, rd_loss_terms
from monai_rd.losses import RDLoss
from tests.helpers.references import cka_kernel_numpy


def run_schedule(unit, max_epochs=3, epoch_length=4, weights=None):
    loss = RDLoss()
    seen = []
    engine = Engine(lambda e, b: seen.append(dict(loss.weights)))
    engine.loss_function = loss
    LossWeightSchedule(weights, unit=unit).attach(engine)
    engine.run(range(epoch_length), max_epochs=max_epochs)
    return seen


def test_default_schedule_is_the_papers_linear_decay_per_iteration():
    seen = run_schedule("iteration")
    total = 12
    for i, w in enumerate(seen):
        assert w["ce_teacher"] == w["ce_student"] == 1.0
        assert w["kd"] == pytest.approx(1 - i / (total - 1))
        assert w["cka"] == pytest.approx(1 - i / (total - 1))
    assert seen[0]["kd"] == 1.0 and seen[-1]["kd"] == 0.0


def test_epoch_unit_and_custom_terms():
    seen = run_schedule("epoch", weights={"kd": {"start": 2.0, "end": 1.0, "schedule": "linear"}, "ce_teacher": 0.5})
    kd = [w["kd"] for w in seen]
    assert kd == [2.0] * 4 + [1.5] * 4 + [1.0] * 4
    assert all(w["ce_teacher"] == 0.5 and w["cka"] == 1.0 for w in seen)


def test_schedule_errors():
    with pytest.raises(ValueError, match="schedule"):
        WeightSchedule(1, 0, "cosine")
    with pytest.raises(ValueError, match="unit"):
        LossWeightSchedule(unit="batch")
    engine = Engine(lambda e, b: None)
    engine.loss_function = RDLoss()
    LossWeightSchedule({"typo": 1.0}).attach(engine)
    with pytest.raises(KeyError, match=r"LossWeightSchedule: unknown loss terms \['typo'\]"):
        engine.run([0], max_epochs=1)


def test_cka_monitor_over_an_epoch_matches_numpy():
    rng = np.random.default_rng(0)
    f_t, f_s = rng.normal(size=(10, 6)), rng.normal(size=(10, 4))
    f_s[:, :3] += f_t[:, :3]
    batches = [(0, 4), (4, 8), (8, 10)]

    def step(engine, b):
        # MONAI decollates the output into per-item dicts
        return [{"f_T": torch.tensor(f_t[i]), "f_S": torch.tensor(f_s[i])} for i in range(*b)]

    engine = Engine(step)
    CKAMonitor().attach(engine, "val_cka")
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics["val_cka"] == pytest.approx(cka_kernel_numpy(f_t, f_s), abs=1e-5)


def test_output_transforms():
    out = [
        {
            "pred": torch.tensor([0.1, 0.9]),
            "label": torch.tensor([0.0, 1.0]),
            "loss": 1.5,
            "loss_kd": 0.2,
            "weight_kd": 0.5,
            "cka": 0.7,
            "image": torch.zeros(1),
        },
        {
            "pred": torch.tensor([0.8, 0.2]),
            "label": torch.tensor([1.0, 0.0]),
            "loss": 1.5,
            "loss_kd": 0.2,
            "weight_kd": 0.5,
            "cka": 0.7,
            "image": torch.zeros(1),
        },
    ]
    assert rd_loss_terms(out) == {"loss": 1.5, "loss_kd": 0.2, "weight_kd": 0.5, "cka": 0.7}
    pred, label = probs_and_class_indices(out)
    assert pred.shape == (2, 2) and label.tolist() == [1, 0]
    out[0]["label"], out[1]["label"] = torch.tensor(1), torch.tensor([0])
    assert probs_and_class_indices(out)[1].tolist() == [1, 0]
    with pytest.raises(KeyError, match="loss"):
        rd_loss_terms([{"pred": 1}])

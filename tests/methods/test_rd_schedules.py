"""Named RD loss-weight schedules (the paper's and the warm-up) and the CKA feature memory.

Weights are checked per iteration on a real Ignite engine against values written out by hand; the memory
CKA against an independent NumPy float64 kernel-form CKA.
"""

import pytest
import torch
from ignite.engine import Engine

from monai_rd.handlers import LossWeightSchedule, WeightSchedule
from monai_rd.losses import RD_SCHEDULES, RDLoss, linear_cka, rd_schedule
from tests.helpers.references import cka_kernel_numpy


def _weights_per_iteration(schedule=None, weights=None, unit="iteration", max_epochs=5, epoch_length=2):
    loss = RDLoss()
    seen = []
    engine = Engine(lambda e, b: seen.append(dict(loss.weights)))
    engine.loss_function = loss
    LossWeightSchedule(weights, unit=unit, schedule=schedule).attach(engine)
    engine.run(range(epoch_length), max_epochs=max_epochs)
    return seen


def test_paper_schedule_by_name_is_the_linear_decay_from_the_first_step():
    seen = _weights_per_iteration("paper")  # 10 iterations: progress i / 9
    assert [w["kd"] for w in seen] == pytest.approx([1 - i / 9 for i in range(10)])
    assert [w["cka"] for w in seen] == pytest.approx([1 - i / 9 for i in range(10)])
    assert all(w["ce_teacher"] == w["ce_student"] == 1.0 for w in seen)


def test_warmup_schedule_follows_its_definition_exactly():
    # 10 iterations, progress p = i / 9; warm-up 0.2: p < 0.2 for i = 0, 1 -> weight 0;
    # then q = (p - 0.2) / 0.8 and the weight is 1 - q
    seen = _weights_per_iteration("warmup")
    expected = [0.0, 0.0] + [1 - ((i / 9) - 0.2) / 0.8 for i in range(2, 10)]
    assert [w["kd"] for w in seen] == pytest.approx(expected)
    assert [w["cka"] for w in seen] == pytest.approx(expected)
    assert seen[-1]["kd"] == pytest.approx(0.0)
    assert all(w["ce_teacher"] == w["ce_student"] == 1.0 for w in seen)


def test_warmup_by_epoch_and_overrides_on_a_named_schedule():
    seen = _weights_per_iteration("warmup", weights={"cka": 0.5}, unit="epoch")  # p = (epoch - 1) / 4
    kd_by_epoch = [seen[2 * e]["kd"] for e in range(5)]
    assert kd_by_epoch == pytest.approx([0.0, 1 - 0.05 / 0.8, 1 - 0.3 / 0.8, 1 - 0.55 / 0.8, 0.0])
    assert all(w["cka"] == 0.5 for w in seen)


def test_schedule_names_and_errors():
    assert set(RD_SCHEDULES) >= {"paper", "warmup"}
    copy = rd_schedule("paper")
    copy["kd"]["start"] = 7.0
    assert RD_SCHEDULES["paper"]["kd"]["start"] == 1.0  # a copy, not the registry's own dict
    with pytest.raises(ValueError, match="warmup"):
        rd_schedule("cosine_warm")
    with pytest.raises(ValueError, match="warmup"):
        LossWeightSchedule(schedule="nope")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        WeightSchedule(1.0, 0.0, "linear", warmup=1.0)
    assert WeightSchedule(2.0, schedule="constant", warmup=0.5)(0.49) == 0.0
    assert WeightSchedule(2.0, schedule="constant", warmup=0.5)(0.5) == 2.0


def test_explicit_weights_alone_keep_their_old_meaning():
    # the comparison methods pass their own terms; no RD base schedule may be mixed in
    sched = LossWeightSchedule({"kd": 1.0})
    assert set(sched.schedules) == {"kd"}


def _features(seed, n=8):
    g = torch.Generator().manual_seed(seed)
    f_t = torch.randn(n, 6, generator=g, dtype=torch.float64)
    f_s = torch.randn(n, 5, generator=g, dtype=torch.float64) + 0.5 * f_t[:, :5]
    return f_t, f_s


def test_memory_cka_equals_batch_cka_when_the_memory_holds_exactly_the_current_batch():
    f_t, f_s = _features(0)
    loss = RDLoss(cka_memory=8, gather_distributed=False)
    loss._memory = (f_t.clone(), f_s.clone())  # the memory is the current batch
    value = loss.cka_with_memory(f_t, f_s)
    assert float(value) == pytest.approx(float(linear_cka(f_t, f_s)), abs=1e-12)
    assert float(value) == pytest.approx(cka_kernel_numpy(f_t.numpy(), f_s.numpy()), abs=1e-10)


def test_memory_is_a_fifo_of_recent_samples_and_gradients_flow_through_the_current_batch_only():
    loss = RDLoss(cka_memory=12, gather_distributed=False)
    batches = [_features(s) for s in range(3)]
    assert float(loss.cka_with_memory(*batches[0])) == pytest.approx(float(linear_cka(*batches[0])))
    loss.cka_with_memory(*batches[1])
    f_t, f_s = (b.clone().requires_grad_(True) for b in batches[2])
    value = loss.cka_with_memory(f_t, f_s)
    # memory before the third batch: batch 1 (8) then the first 4 of batch 0
    mem_t = torch.cat([batches[1][0], batches[0][0][:4]])
    mem_s = torch.cat([batches[1][1], batches[0][1][:4]])
    expected = cka_kernel_numpy(torch.cat([batches[2][0], mem_t]).numpy(), torch.cat([batches[2][1], mem_s]).numpy())
    assert float(value) == pytest.approx(expected, abs=1e-10)
    value.backward()
    assert f_t.grad is not None and f_t.grad.abs().sum() > 0
    assert loss._memory[0].shape == (12, 6) and not loss._memory[0].requires_grad
    assert torch.equal(loss._memory[0][:8], batches[2][0])  # newest first
    with torch.no_grad():  # evaluation does not feed the memory
        loss.cka_with_memory(*batches[0])
    assert torch.equal(loss._memory[0][:8], batches[2][0])


def test_rd_loss_with_memory_reports_the_memory_cka():
    f_t, f_s = _features(1)
    z = torch.zeros(8, 3, dtype=torch.float64)
    loss = RDLoss(cka_memory=16, gather_distributed=False)
    out = {"f_T": f_t, "f_S": f_s, "z_T": z, "z_S": z}
    target = torch.zeros(8, dtype=torch.long)
    first = loss(out, target)
    assert float(first["cka_value"]) == pytest.approx(float(linear_cka(f_t, f_s)))
    g_t, g_s = _features(2)
    second = loss({"f_T": g_t, "f_S": g_s, "z_T": z, "z_S": z}, target)
    expected = cka_kernel_numpy(torch.cat([g_t, f_t]).numpy(), torch.cat([g_s, f_s]).numpy())
    assert float(second["cka_value"]) == pytest.approx(expected, abs=1e-10)
    assert float(second["cka"]) == pytest.approx(1 - expected, abs=1e-10)
    with pytest.raises(ValueError, match="cka_memory"):
        RDLoss(cka_memory=-1)

"""CRD: NCE value, normalisation constants, memory-bank update and negative sampling against NumPy."""

import numpy as np
import pytest
import torch

from monai_rd.losses import CRDLoss, nce_loss
from tests.helpers.kd_references import l2n, t2n


def nce_numpy(h, num_data, eps=1e-7):
    """CRD eq. (18): -E[log h(pos)/(h(pos)+K/N)] - K E[log (K/N)/(h(neg)+K/N)], per batch."""
    k = h.shape[1] - 1
    c = k / num_data
    return -(np.sum(np.log(h[:, 0] / (h[:, 0] + c + eps))) + np.sum(np.log(c / (h[:, 1:] + c + eps)))) / h.shape[0]


def crd_numpy(fs, ft, ws, bs, wt, bt, mem_s, mem_t, idx, temp, num_data, z=None):
    vs, vt = l2n(fs @ ws.T + bs), l2n(ft @ wt.T + bt)
    es = np.exp(np.einsum("bkd,bd->bk", mem_t[idx], vs) / temp)
    et = np.exp(np.einsum("bkd,bd->bk", mem_s[idx], vt) / temp)
    if z is None:
        z = (es.mean() * num_data, et.mean() * num_data)
    return nce_numpy(es / z[0], num_data) + nce_numpy(et / z[1], num_data), vs, vt, z


def test_nce_by_hand():
    # one sample, K = 1, num_data = 4 -> K P_n = 1/4; h_pos = 3/4, h_neg = 1/4:
    # -(log(0.75 / 1.0) + log(0.25 / 0.5)) = log(4/3) + log(2)
    got = nce_loss(torch.tensor([[0.75, 0.25]], dtype=torch.float64), 4, eps=0.0)
    assert abs(float(got.detach()) - (np.log(4 / 3) + np.log(2))) < 1e-12


def test_crd_value_z_and_memory_update():
    torch.manual_seed(0)
    n, b, k, temp, mom = 10, 3, 4, 0.5, 0.5
    loss = CRDLoss(6, 8, num_data=n, feat_dim=5, num_negatives=k, temperature=temp, momentum=mom, seed=3).double()
    rng = np.random.default_rng(0)
    fs, ft = rng.normal(size=(b, 6)), rng.normal(size=(b, 8))
    index = np.array([7, 0, 4])
    neg = np.array([[1, 2, 3, 5], [9, 8, 7, 6], [0, 1, 2, 3]])
    idx = np.concatenate([index[:, None], neg], axis=1)
    w = [t2n(p) for p in (loss.embed_s.weight, loss.embed_s.bias, loss.embed_t.weight, loss.embed_t.bias)]
    mem_s, mem_t = t2n(loss.memory_s), t2n(loss.memory_t)
    stdv = 1 / np.sqrt(5 / 3)
    assert np.all(np.abs(mem_s) <= stdv) and np.all(np.abs(mem_t) <= stdv)

    got = loss(torch.tensor(fs), torch.tensor(ft), torch.tensor(index), torch.tensor(neg))
    expected, vs, vt, z = crd_numpy(fs, ft, *w, mem_s, mem_t, idx, temp, n)
    assert abs(float(got.detach()) - expected) < 1e-9
    np.testing.assert_allclose(t2n(loss.z), z, rtol=1e-12)

    # momentum update of the rows of the batch, re-normalised; other rows untouched
    new_s, new_t = mem_s.copy(), mem_t.copy()
    new_s[index] = l2n(mom * mem_s[index] + (1 - mom) * vs)
    new_t[index] = l2n(mom * mem_t[index] + (1 - mom) * vt)
    np.testing.assert_allclose(t2n(loss.memory_s), new_s, atol=1e-12)
    np.testing.assert_allclose(t2n(loss.memory_t), new_t, atol=1e-12)

    # second call: Z stays fixed, scores read the updated banks
    fs2, ft2 = rng.normal(size=(b, 6)), rng.normal(size=(b, 8))
    got2 = loss(torch.tensor(fs2), torch.tensor(ft2), torch.tensor(index), torch.tensor(neg))
    expected2, *_ = crd_numpy(fs2, ft2, *w, new_s, new_t, idx, temp, n, z=z)
    assert abs(float(got2.detach()) - expected2) < 1e-9

    # eval mode: no bank update
    loss.eval()
    before = loss.memory_s.clone()
    loss(torch.tensor(fs), torch.tensor(ft), torch.tensor(index), torch.tensor(neg))
    assert torch.equal(before, loss.memory_s)


def test_negative_sampling_seeded_and_excludes_positive():
    a = CRDLoss(4, 4, num_data=6, num_negatives=5, seed=1)
    b = CRDLoss(4, 4, num_data=6, num_negatives=5, seed=1)
    index = torch.tensor([0, 3, 5, 2])
    na, nb = a.sample_negatives(index), b.sample_negatives(index)
    assert torch.equal(na, nb) and na.shape == (4, 5)
    assert na.min() >= 0 and na.max() < 6
    assert not (na == index[:, None]).any()
    # uniform over the 5 other indices
    many = a.sample_negatives(torch.zeros(2000, dtype=torch.long)).flatten()
    counts = np.bincount(many.numpy(), minlength=6)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] / many.numel() - 0.2) < 0.02)


def test_crd_maps_gradients_and_errors(caplog):
    with caplog.at_level("WARNING", logger="monai_rd.losses.crd"):
        loss = CRDLoss(3, 5, num_data=20, feat_dim=4)  # the paper's 16384 negatives, capped by the data
    assert loss.num_negatives == 19 and "16384 negatives asked for" in caplog.text and "capped" in caplog.text
    assert CRDLoss(3, 5, num_data=20000, feat_dim=4).num_negatives == 16384
    out = loss(torch.randn(4, 3, 2, 2), torch.randn(4, 17, 5), torch.tensor([0, 1, 2, 19]))  # map & tokens averaged
    out.backward()
    assert loss.embed_s.weight.grad is not None and loss.embed_t.weight.grad is not None
    with pytest.raises(ValueError, match=r"\[0, 20\).*\[0, 20\]"):
        loss(torch.randn(2, 3), torch.randn(2, 5), torch.tensor([0, 20]))
    with pytest.raises(ValueError, match="one dataset index per sample"):
        loss(torch.randn(2, 3), torch.randn(2, 5), torch.tensor([0]))
    with pytest.raises(ValueError, match="num_negatives"):
        CRDLoss(3, 5, num_data=20, num_negatives=0)


def test_with_labels_negatives_come_from_the_other_classes_uniformly():
    """RepDistiller's ``mode="exact"``: K negatives per anchor, with replacement, from the other classes' samples."""
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    loss = CRDLoss(4, 4, num_data=10, num_negatives=4000, labels=labels)
    index = torch.tensor([0, 3, 5, 9])
    neg = loss.sample_negatives(index)
    assert neg.shape == (4, 4000)
    lab = np.array(labels)
    for row, i in enumerate(index.tolist()):
        drawn = neg[row].numpy()
        assert (lab[drawn] != lab[i]).all()
        pool = np.flatnonzero(lab != lab[i])
        counts = np.bincount(drawn, minlength=10)[pool]
        assert set(np.unique(drawn)) == set(pool)  # every other-class sample can be drawn ...
        assert counts.min() > 0.7 * 4000 / len(pool) and counts.max() < 1.3 * 4000 / len(pool)  # ... uniformly
    again = CRDLoss(4, 4, num_data=10, num_negatives=4000, labels=labels).sample_negatives(index)
    assert torch.equal(neg, again)  # seeded
    with pytest.raises(ValueError, match="one class per training sample"):
        CRDLoss(4, 4, num_data=10, labels=labels[:-1])
    with pytest.raises(ValueError, match="one class"):
        CRDLoss(4, 4, num_data=3, labels=[1, 1, 1])


def test_the_crd_method_passes_single_labels_and_not_multi_hot_ones():
    from monai_rd.methods import build_method
    from monai_rd.networks import StudentClassifier, build_teacher

    teacher = build_teacher("torchvision:resnet18", input_size=32)
    single = build_method("crd", teacher, StudentClassifier("resnet18", 3), 3, image_size=32, num_data=6,
                          train_labels=[0, 1, 2, 0, 1, 2])  # fmt: skip
    crd = next(m for m in single.loss.modules() if isinstance(m, CRDLoss))
    assert crd._others is not None and torch.equal(crd._labels, torch.tensor([0, 1, 2, 0, 1, 2]))
    multi = build_method("crd", teacher, StudentClassifier("resnet18", 3), 3, image_size=32, num_data=2,
                         multi_label=True, train_labels=[[1, 0, 1], [0, 1, 0]])  # fmt: skip
    assert next(m for m in multi.loss.modules() if isinstance(m, CRDLoss))._others is None

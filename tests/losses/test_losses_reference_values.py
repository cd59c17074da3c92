"""Stored numbers from a published reference implementation (RepDistiller, HobbitLong/RepDistiller @ HEAD).

The constants below were produced once by running RepDistiller's own ``distiller_zoo/AT.py`` (``Attention``),
``distiller_zoo/VID.py`` (``VIDLoss``) and ``crd/criterion.py`` + ``crd/memory.py`` (``CRDLoss`` with
``ContrastMemory``; its CUDA-only alias sampler was bypassed by passing ``contrast_idx``) in float64 on the inputs
and weights built by the ``*_case`` functions here (copied into both implementations). RepDistiller is not a
dependency and none of its code is in this repository; only its outputs are stored, like torchdistill's
``pre-computed_loss.json``.
"""

import numpy as np
import torch

from monai_rd.losses import ATLoss, CRDLoss, VIDLoss

REPDISTILLER = {
    "at": 0.022058906517588628,
    "vid": 0.6039753167057803,
    "crd_first": 14.407963403086018,
    "crd_second": 14.0448258887591,
    "crd_memory_s_sum": 1.674218704921846,
    "crd_memory_t_sum": 3.5905860699812537,
}


def at_case():
    rng = np.random.default_rng(2024)
    return rng.normal(size=(3, 4, 8, 8)), rng.normal(size=(3, 16, 4, 4))


def vid_case():
    rng = np.random.default_rng(2025)
    s, t = rng.normal(size=(2, 4, 8, 8)), rng.normal(size=(2, 6, 4, 4))
    ws = [rng.normal(size=shape) * 0.3 for shape in ((6, 4, 1, 1), (6, 6, 1, 1), (6, 6, 1, 1))]
    log_scale = rng.normal(size=6)
    return s, t, ws, log_scale


def crd_case():
    rng = np.random.default_rng(2026)
    n, b, d, k = 12, 4, 6, 5
    stdv = 1 / np.sqrt(d / 3)
    return dict(
        n=n,
        k=k,
        d=d,
        temperature=0.1,
        momentum=0.5,
        fs=[rng.normal(size=(b, 7)), rng.normal(size=(b, 7))],
        ft=[rng.normal(size=(b, 9)), rng.normal(size=(b, 9))],
        w_s=rng.normal(size=(d, 7)) * 0.3,
        b_s=rng.normal(size=d) * 0.1,
        w_t=rng.normal(size=(d, 9)) * 0.3,
        b_t=rng.normal(size=d) * 0.1,
        mem_s=rng.uniform(-stdv, stdv, size=(n, d)),
        mem_t=rng.uniform(-stdv, stdv, size=(n, d)),
        index=np.array([3, 0, 11, 7]),
        neg=rng.integers(0, n, size=(b, k)),
    )


def test_at_matches_repdistiller():
    s, t = at_case()
    # RepDistiller's Attention returns mean((Q_S - Q_T)^2) per pair, which its train script weights by -b 1000
    got = ATLoss(beta=1.0)(torch.tensor(s), torch.tensor(t))
    assert abs(float(got.detach()) - REPDISTILLER["at"]) < 1e-12
    assert abs(float(ATLoss()(torch.tensor(s), torch.tensor(t)).detach()) - 1000 * REPDISTILLER["at"]) < 1e-9


def test_vid_matches_repdistiller():
    s, t, ws, log_scale = vid_case()
    loss = VIDLoss(4, 6, mid_channels=6).double()
    with torch.no_grad():
        for i, w in zip((0, 2, 4), ws):
            loss.regressor[i].weight.copy_(torch.tensor(w))
        loss.alpha.copy_(torch.tensor(log_scale))
    got = loss(torch.tensor(s), torch.tensor(t))
    assert abs(float(got.detach()) - REPDISTILLER["vid"]) < 1e-12


def test_crd_matches_repdistiller_over_two_steps():
    c = crd_case()
    # RepDistiller keeps T in a float32 buffer (0.1 -> 0.10000000149...); use the same value here
    loss = CRDLoss(
        7,
        9,
        num_data=c["n"],
        feat_dim=c["d"],
        num_negatives=c["k"],
        temperature=float(np.float32(c["temperature"])),
        momentum=c["momentum"],
    ).double()
    with torch.no_grad():
        loss.embed_s.weight.copy_(torch.tensor(c["w_s"]))
        loss.embed_s.bias.copy_(torch.tensor(c["b_s"]))
        loss.embed_t.weight.copy_(torch.tensor(c["w_t"]))
        loss.embed_t.bias.copy_(torch.tensor(c["b_t"]))
        loss.memory_s.copy_(torch.tensor(c["mem_s"]))
        loss.memory_t.copy_(torch.tensor(c["mem_t"]))
    index, neg = torch.tensor(c["index"]), torch.tensor(c["neg"])
    first = loss(torch.tensor(c["fs"][0]), torch.tensor(c["ft"][0]), index, neg)
    second = loss(torch.tensor(c["fs"][1]), torch.tensor(c["ft"][1]), index, neg)
    assert abs(float(first.detach()) - REPDISTILLER["crd_first"]) < 1e-9
    assert abs(float(second.detach()) - REPDISTILLER["crd_second"]) < 1e-9
    assert abs(float(loss.memory_s.sum()) - REPDISTILLER["crd_memory_s_sum"]) < 1e-9
    assert abs(float(loss.memory_t.sum()) - REPDISTILLER["crd_memory_t_sum"]) < 1e-9

"""NORM (N-to-one representation matching) against a NumPy re-derivation."""

import numpy as np
import pytest
import torch

from monai_rd.losses import MethodLoss, NORMLoss
from tests.helpers.kd_references import block_mean, conv1x1, t2n


def bn_train(x, bn):
    """BatchNorm2d in training mode: each channel standardised over (B, H, W) with the biased variance."""
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    g, b = t2n(bn.weight)[None, :, None, None], t2n(bn.bias)[None, :, None, None]
    return (x - mean) / np.sqrt(var + bn.eps) * g + b


def bn_eval(x, bn):
    rm, rv = t2n(bn.running_mean)[None, :, None, None], t2n(bn.running_var)[None, :, None, None]
    g, b = t2n(bn.weight)[None, :, None, None], t2n(bn.bias)[None, :, None, None]
    return (x - rm) / np.sqrt(rv + bn.eps) * g + b


def expanded_numpy(s, ft, train=True):
    """E(s): the authors' conv1x1 (no bias) + BN, or the plain biased 1x1 convolution."""
    if ft.kind == "plain":
        return conv1x1(s, t2n(ft.expand.weight), t2n(ft.expand.bias))
    conv, bn = ft.expand
    e = conv1x1(s, t2n(conv.weight))
    return bn_train(e, bn) if train else bn_eval(e, bn)


def ft_numpy(s, ft, train=True):
    """FT(s) = C(E(s)) (+ s for the authors' residual form)."""
    e = expanded_numpy(s, ft, train)
    if ft.kind == "plain":
        return conv1x1(e, t2n(ft.contract.weight), t2n(ft.contract.bias))
    conv, bn = ft.contract
    c = conv1x1(e, t2n(conv.weight))
    return (bn_train(c, bn) if train else bn_eval(c, bn)) + s


def segment_errors(e, t, n):
    ct = t.shape[1]
    segments = [e[:, i * ct : (i + 1) * ct] for i in range(n)]  # sequential, non-overlapping
    return np.sum([np.mean((seg - t) ** 2) for seg in segments])


@pytest.mark.parametrize("kind", ["conv_bn_residual", "plain"])
@pytest.mark.parametrize("n", [1, 3])
def test_norm_numpy(n, kind):
    """E reads the whole student map (BatchNorm over it, in training mode), then the expanded map is pooled to the
    teacher's size; the loss is the sum of the segments' errors = N * MSE(expanded, tiled teacher)."""
    torch.manual_seed(n)
    rng = np.random.default_rng(n)
    s, t = rng.normal(size=(2, 4, 8, 8)), rng.normal(size=(2, 5, 4, 4))
    loss = NORMLoss(4, 5, num_segments=n, feature_transform=kind).double()
    if kind != "plain":  # non-trivial affine BatchNorm parameters
        torch.nn.init.normal_(loss.ft.expand[1].weight)
        torch.nn.init.normal_(loss.ft.expand[1].bias)
    stats = [b.clone() for b in loss.buffers()]
    got = loss(torch.tensor(s), torch.tensor(t))
    e = block_mean(expanded_numpy(s, loss.ft), 4, 4)
    assert abs(float(got.detach()) - segment_errors(e, t, n)) < 1e-10
    assert abs(float(got.detach()) - n * np.mean((e - np.tile(t, (1, n, 1, 1))) ** 2)) < 1e-10  # the authors' form
    # the loss's read of E leaves BatchNorm's running statistics to the classifier's pass
    assert all(torch.equal(a, b) for a, b in zip(stats, loss.buffers()))
    loss.eval()  # eval mode: the running statistics
    e = block_mean(expanded_numpy(s, loss.ft, train=False), 4, 4)
    assert abs(float(loss(torch.tensor(s), torch.tensor(t))) - segment_errors(e, t, n)) < 1e-10


def test_norm_vectors_transform_and_errors():
    loss = NORMLoss(6, 3, num_segments=2)
    contracted, expanded = loss.transform(torch.randn(2, 6, 4, 4))
    assert contracted.shape == (2, 6, 4, 4) and expanded.shape == (2, 6, 4, 4)
    out = loss(torch.randn(2, 6), torch.randn(2, 3))  # penultimate vectors
    out.backward()
    assert loss.expand[0].weight.grad is not None
    with pytest.raises(ValueError, match=r"6 -> 3 channels"):
        loss(torch.randn(2, 6), torch.randn(2, 4))


@pytest.mark.parametrize("kind", ["conv_bn_residual", "plain"])
def test_norm_method_feeds_the_transformed_map_to_the_classifier_and_deploys_it_folded(kind):
    """Training: the student's logits are h(pool(FT(F_S))) with BatchNorm's batch statistics (NumPy float64 from the
    tapped map); eval: the same with the running statistics, which is what model.pt holds: a plain
    StudentClassifier with the FT folded into its head. E and C are trained."""
    import copy

    from monai_rd.methods import build_method
    from monai_rd.networks import StudentClassifier, build_teacher

    torch.manual_seed(0)
    teacher = build_teacher("torchvision:resnet18", "random")
    student = StudentClassifier("resnet18", 3)
    method = build_method("norm", teacher, student, 3, image_size=32, num_data=16, batch_size=4,
                          loss_options={"feature_transform": kind})  # fmt: skip
    net, fl = method.network, method.loss.feature_loss
    assert fl.ft.kind == kind and method.info["feature_transform"] == kind
    maps = []
    hook = student.get_submodule(method.info["student_layers"][0]).register_forward_hook(
        lambda m, i, o: maps.append(o.detach().double().numpy()))  # fmt: skip
    x = torch.rand(4, 3, 32, 32)
    wh, bh = student.head.weight.detach().double().numpy(), student.head.bias.detach().double().numpy()
    for train in (True, False):
        net.train(train)
        maps.clear()
        z = net(x)["z_S"].detach().double().numpy()
        f = maps[0]  # [B, 512, h, w]
        expected = ft_numpy(f, fl.ft, train=train).mean(axis=(2, 3)) @ wh.T + bh
        np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-4)
    hook.remove()

    plain = StudentClassifier("resnet18", 3).eval()
    plain.load_state_dict(net.deployable().state_dict(), strict=True)  # what model.pt holds
    np.testing.assert_allclose(plain(x).detach().double().numpy(), expected, rtol=1e-4, atol=1e-4)
    assert type(copy.deepcopy(net.deployable())) is StudentClassifier  # what the report and registry copy
    reloaded = build_method("norm", teacher, StudentClassifier("resnet18", 3), 3, image_size=32, num_data=16,
                            batch_size=4, loss_options={"feature_transform": kind}).network.eval()  # fmt: skip
    reloaded.deployable().load_state_dict(net.deployable().state_dict())  # folded head, FT reset to the identity
    np.testing.assert_allclose(reloaded(x)["z_S"].detach().double().numpy(), expected, rtol=1e-4, atol=1e-4)

    net.train()
    method.loss(net(x), torch.tensor([0, 1, 2, 0]))["loss"].backward()
    for layer in (fl.expand, fl.contract):
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert {id(p) for p in fl.ft.parameters()} <= {id(p) for p in method.parameters()}

    with pytest.raises(ValueError, match="taps the student's last feature map"):
        build_method("norm", teacher, StudentClassifier("resnet18", 3), 3, image_size=32, num_data=16, batch_size=4,
                     student_layers="backbone.model.layer3")  # fmt: skip


def test_norm_standardises_the_logits_as_the_authors_training_loop():
    """CE reads 2.5 * layer_norm(z) (NumPy float64); off with None; refused where it would carry no gradient."""
    import logging

    from monai_rd.methods import build_method
    from monai_rd.networks import StudentClassifier, build_teacher

    torch.manual_seed(0)
    teacher = build_teacher("torchvision:resnet18", "random")
    method = build_method("norm", teacher, StudentClassifier("resnet18", 3), 3, image_size=32, num_data=8, batch_size=4)
    assert method.info["logit_standardisation"] == 2.5
    out = {"z_S": torch.randn(4, 3, dtype=torch.float64), "z_T": torch.randn(4, 3, dtype=torch.float64)}
    y = torch.tensor([0, 1, 2, 1])
    z = out["z_S"].numpy()
    zs = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + 1e-7) * 2.5
    logp = zs - np.log(np.exp(zs).sum(1, keepdims=True))
    ce = -logp[np.arange(4), y.numpy()].mean()
    assert method.loss.logit_standardisation == 2.5
    loss = MethodLoss({"ce_student": 1.0}, logit_standardisation=2.5)  # the CE term alone
    assert abs(float(loss(out, y)["ce_student"]) - ce) < 1e-6  # the supervised term computes in float32
    loss.logit_standardisation = None
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    assert abs(float(loss(out, y)["ce_student"]) + logp[np.arange(4), y.numpy()].mean()) < 1e-6
    off = build_method("norm", teacher, StudentClassifier("resnet18", 3), 3, image_size=32, num_data=8, batch_size=4,
                       logit_standardisation=None)  # fmt: skip
    assert off.loss.logit_standardisation is None and off.info["logit_standardisation"] is None

    class Records(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    records = Records()
    logging.getLogger("monai_rd.methods.registry").addHandler(records)
    try:
        two = build_method(
            "norm", teacher, StudentClassifier("resnet18", 2), 2, image_size=32, num_data=8, batch_size=4
        )
    finally:
        logging.getLogger("monai_rd.methods.registry").removeHandler(records)
    assert two.loss.logit_standardisation is None and two.info["logit_standardisation"] is None
    assert any("2 classes" in m for m in records.messages)
    with pytest.raises(ValueError, match="must be > 0"):
        build_method("norm", teacher, StudentClassifier("resnet18", 3), 3, image_size=32, num_data=8, batch_size=4,
                     logit_standardisation=0.0)  # fmt: skip

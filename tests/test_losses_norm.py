"""NORM (N-to-one representation matching) against a NumPy re-derivation."""

import numpy as np
import pytest
import torch

from monai_rd.losses import NORMLoss
from tests.kd_references import block_mean, conv1x1, t2n


def norm_numpy(s, t, loss, n):
    e = conv1x1(s, t2n(loss.expand.weight), t2n(loss.expand.bias))
    ct = t.shape[1]
    segments = [e[:, i * ct : (i + 1) * ct] for i in range(n)]  # sequential, non-overlapping
    return np.sum([np.mean((seg - t) ** 2) for seg in segments])


@pytest.mark.parametrize("n", [1, 3])
def test_norm_numpy(n):
    torch.manual_seed(n)
    rng = np.random.default_rng(n)
    s, t = rng.normal(size=(2, 4, 8, 8)), rng.normal(size=(2, 5, 4, 4))
    loss = NORMLoss(4, 5, num_segments=n).double()
    got = loss(torch.tensor(s), torch.tensor(t))
    sp = block_mean(s, 4, 4)
    assert abs(float(got.detach()) - norm_numpy(sp, t, loss, n)) < 1e-10
    # the authors' form: N * MSE(expanded student, teacher tiled N times along channels)
    e = conv1x1(sp, t2n(loss.expand.weight), t2n(loss.expand.bias))
    assert abs(float(got.detach()) - n * np.mean((e - np.tile(t, (1, n, 1, 1))) ** 2)) < 1e-10


def test_norm_vectors_transform_and_errors():
    loss = NORMLoss(6, 3, num_segments=2)
    contracted, expanded = loss.transform(torch.randn(2, 6, 4, 4))
    assert contracted.shape == (2, 6, 4, 4) and expanded.shape == (2, 6, 4, 4)
    out = loss(torch.randn(2, 6), torch.randn(2, 3))  # penultimate vectors
    out.backward()
    assert loss.expand.weight.grad is not None
    with pytest.raises(ValueError, match=r"6 -> 3 channels"):
        loss(torch.randn(2, 6), torch.randn(2, 4))


def test_norm_method_feeds_the_contracted_feature_to_the_classifier_and_deploys_it_folded():
    """The student's logits in training are h(pool(C(E(F_S)))) (NumPy float64 from the tapped map), the saved
    model.pt is a plain StudentClassifier with E and C folded into its head, and both E and C are trained."""
    import copy

    from monai_rd.methods import build_method
    from monai_rd.networks import StudentClassifier, build_teacher

    torch.manual_seed(0)
    teacher = build_teacher("torchvision:resnet18", "random")
    student = StudentClassifier("resnet18", 3)
    method = build_method("norm", teacher, student, 3, image_size=32, num_data=16, batch_size=4)
    net, fl = method.network.eval(), method.loss.feature_loss
    maps = []
    hook = student.get_submodule(method.info["student_layers"][0]).register_forward_hook(
        lambda m, i, o: maps.append(o.detach().double().numpy()))  # fmt: skip
    x = torch.rand(4, 3, 32, 32)
    z = net(x)["z_S"].detach().double().numpy()
    hook.remove()
    f = maps[0]  # [B, 512, h, w]
    we, be = fl.expand.weight.detach().double().numpy()[:, :, 0, 0], fl.expand.bias.detach().double().numpy()
    wc, bc = fl.contract.weight.detach().double().numpy()[:, :, 0, 0], fl.contract.bias.detach().double().numpy()
    e = np.einsum("oc,bchw->bohw", we, f) + be[None, :, None, None]
    c = np.einsum("oc,bchw->bohw", wc, e) + bc[None, :, None, None]
    wh, bh = student.head.weight.detach().double().numpy(), student.head.bias.detach().double().numpy()
    expected = c.mean(axis=(2, 3)) @ wh.T + bh
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-4)

    plain = StudentClassifier("resnet18", 3).eval()
    plain.load_state_dict(net.deployable().state_dict(), strict=True)  # what model.pt holds
    np.testing.assert_allclose(plain(x).detach().double().numpy(), expected, rtol=1e-4, atol=1e-4)
    assert type(copy.deepcopy(net.deployable())) is StudentClassifier  # what the report and registry copy

    net.train()
    method.loss(net(x), torch.tensor([0, 1, 2, 0]))["loss"].backward()
    assert fl.expand.weight.grad.abs().sum() > 0 and fl.contract.weight.grad.abs().sum() > 0
    assert {id(fl.expand.weight), id(fl.contract.weight)} <= {id(p) for p in method.parameters()}

    with pytest.raises(ValueError, match="taps the student's last feature map"):
        build_method("norm", teacher, StudentClassifier("resnet18", 3), 3, image_size=32, num_data=16, batch_size=4,
                     student_layers="backbone.model.layer3")  # fmt: skip

"""RadImageNet teachers: the official PyTorch files, the Keras *_notop.h5 files and the Keras conversion.

The Keras files are written with h5py in Keras' own layout (``layer_names`` / ``weight_names`` attributes,
``conv1_conv/kernel:0`` datasets, HWIO kernels). The expected outputs come from a functional re-statement of
Keras' ResNet50 / DenseNet121 written here from Keras' definitions (explicit zero padding, 'valid' convolutions,
BatchNorm epsilon 1.001e-5, NHWC kernels transposed on the fly), independent of the zoo's converter.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from monai_rd.networks import WeightsMismatchError, build_teacher

SIZE = 64
EPS = 1.001e-5
CAFFE_MEAN_BGR = torch.tensor([0.406, 0.456, 0.485]).view(1, 3, 1, 1)
rng = np.random.default_rng(0)


# ----------------------------------------------------------------------------- Keras files
def _conv(kh, kw, cin, cout, bias=True):
    w = {"kernel": rng.normal(0, (2 / (kh * kw * cin)) ** 0.5, (kh, kw, cin, cout)).astype(np.float32)}
    if bias:
        w["bias"] = rng.normal(0, 0.05, cout).astype(np.float32)
    return w


def _bn(c):
    var, gamma = rng.uniform(0.5, 2.0, c), rng.uniform(0.5, 1.5, c)
    var[: max(1, c // 16)] = 1e-6  # near-dead channels, as trained networks have: there the epsilon matters
    gamma[: max(1, c // 16)] = 1e-3  # (and a small scale keeps activations bounded)
    return {
        "gamma": gamma.astype(np.float32),
        "beta": rng.normal(0, 0.1, c).astype(np.float32),
        "moving_mean": rng.normal(0, 0.1, c).astype(np.float32),
        "moving_variance": var.astype(np.float32),
    }


def keras_resnet50_layers():
    """Keras applications ResNet50(include_top=False) layers in order, weightless ones with ``None``."""
    layers = [
        ("input_1", None),
        ("conv1_pad", None),
        ("conv1_conv", _conv(7, 7, 3, 64)),
        ("conv1_bn", _bn(64)),
        ("conv1_relu", None),
        ("pool1_pad", None),
        ("pool1_pool", None),
    ]
    cin = 64
    for stage, (blocks, filters) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)], start=2):
        for b in range(1, blocks + 1):
            n = f"conv{stage}_block{b}"
            if b == 1:
                layers += [(f"{n}_0_conv", _conv(1, 1, cin, 4 * filters)), (f"{n}_0_bn", _bn(4 * filters))]
            layers += [
                (f"{n}_1_conv", _conv(1, 1, cin, filters)),
                (f"{n}_1_bn", _bn(filters)),
                (f"{n}_1_relu", None),
                (f"{n}_2_conv", _conv(3, 3, filters, filters)),
                (f"{n}_2_bn", _bn(filters)),
                (f"{n}_2_relu", None),
                (f"{n}_3_conv", _conv(1, 1, filters, 4 * filters)),
                (f"{n}_3_bn", _bn(4 * filters)),
                (f"{n}_add", None),
                (f"{n}_out", None),
            ]
            cin = 4 * filters
    return layers


def keras_densenet121_layers():
    layers = [
        ("input_1", None),
        ("zero_padding2d", None),
        ("conv1/conv", _conv(7, 7, 3, 64, bias=False)),
        ("conv1/bn", _bn(64)),
        ("conv1/relu", None),
        ("zero_padding2d_1", None),
        ("pool1", None),
    ]
    c = 64
    for stage, blocks in enumerate([6, 12, 24, 16], start=2):
        for b in range(1, blocks + 1):
            n = f"conv{stage}_block{b}"
            layers += [
                (f"{n}_0_bn", _bn(c)),
                (f"{n}_0_relu", None),
                (f"{n}_1_conv", _conv(1, 1, c, 128, bias=False)),
                (f"{n}_1_bn", _bn(128)),
                (f"{n}_1_relu", None),
                (f"{n}_2_conv", _conv(3, 3, 128, 32, bias=False)),
                (f"{n}_concat", None),
            ]
            c += 32
        if stage < 5:
            layers += [
                (f"pool{stage}_bn", _bn(c)),
                (f"pool{stage}_relu", None),
                (f"pool{stage}_conv", _conv(1, 1, c, c // 2, bias=False)),
                (f"pool{stage}_pool", None),
            ]
            c //= 2
    layers += [("bn", _bn(c)), ("relu", None)]
    return layers


def write_keras_h5(path, layers, whole_model=False):
    """Keras 2 ``save_weights`` layout (``model.save`` nests it under ``model_weights``)."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if whole_model else f
        root.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.4.0"
        for name, weights in layers:
            g = root.create_group(name)
            names = [f"{name}/{w}:0" for w in (weights or {})]
            g.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            for wname, full in zip(weights or {}, names):
                g.create_dataset(full, data=weights[wname])


# ------------------------------------------------------------- functional Keras reference (NCHW)
def k_conv(x, w, stride=1, pad=0):
    x = F.pad(x, (pad, pad, pad, pad)) if pad else x
    kernel = torch.from_numpy(w["kernel"]).permute(3, 2, 0, 1).to(x.dtype)
    bias = torch.from_numpy(w["bias"]).to(x.dtype) if "bias" in w else None
    return F.conv2d(x, kernel, bias, stride=stride)


def k_bn(x, w):
    t = {k: torch.from_numpy(v).view(1, -1, 1, 1).to(x.dtype) for k, v in w.items()}
    return (x - t["moving_mean"]) / torch.sqrt(t["moving_variance"] + EPS) * t["gamma"] + t["beta"]


def keras_resnet50_forward(L, x):
    x = F.relu(k_bn(k_conv(x, L["conv1_conv"], stride=2, pad=3), L["conv1_bn"]))
    x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)  # ZeroPadding2D(1) then MaxPooling2D(3, 2)
    for stage, blocks in zip(range(2, 6), (3, 4, 6, 3)):
        for b in range(1, blocks + 1):
            n, s = f"conv{stage}_block{b}", (2 if stage > 2 and b == 1 else 1)
            sc = k_bn(k_conv(x, L[f"{n}_0_conv"], stride=s), L[f"{n}_0_bn"]) if b == 1 else x
            y = F.relu(k_bn(k_conv(x, L[f"{n}_1_conv"], stride=s), L[f"{n}_1_bn"]))
            y = F.relu(k_bn(k_conv(y, L[f"{n}_2_conv"], pad=1), L[f"{n}_2_bn"]))
            y = k_bn(k_conv(y, L[f"{n}_3_conv"]), L[f"{n}_3_bn"])
            x = F.relu(sc + y)
    return x


def keras_densenet121_forward(L, x):
    x = F.relu(k_bn(k_conv(x, L["conv1/conv"], stride=2, pad=3), L["conv1/bn"]))
    x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)
    for stage, blocks in zip(range(2, 6), (6, 12, 24, 16)):
        for b in range(1, blocks + 1):
            n = f"conv{stage}_block{b}"
            y = k_conv(F.relu(k_bn(x, L[f"{n}_0_bn"])), L[f"{n}_1_conv"])
            y = k_conv(F.relu(k_bn(y, L[f"{n}_1_bn"])), L[f"{n}_2_conv"], pad=1)
            x = torch.cat([x, y], dim=1)
        if stage < 5:
            x = F.avg_pool2d(k_conv(F.relu(k_bn(x, L[f"pool{stage}_bn"])), L[f"pool{stage}_conv"]), 2, 2)
    return F.relu(k_bn(x, L["bn"]))


def caffe_bgr(x):
    return x[:, [2, 1, 0]] - CAFFE_MEAN_BGR.to(x.dtype)


# Random (un-normalised) weights make 50-layer activations large: compare in float64 so that the check is
# about the mapping, not float32 summation order.
def rand64(*shape):
    return torch.rand(*shape, dtype=torch.float64)


@pytest.fixture(scope="module")
def resnet_h5(tmp_path_factory):
    layers = keras_resnet50_layers()
    path = tmp_path_factory.mktemp("rin") / "RadImageNet-ResNet50_notop.h5"
    write_keras_h5(path, layers)
    return path, {n: w for n, w in layers if w}


@pytest.mark.parametrize("pooled", [True, False])
def test_keras_resnet50_h5(resnet_h5, pooled):
    path, L = resnet_h5
    t = build_teacher("radimagenet_resnet50", weights=path, input_size=SIZE, pooled=pooled).double()
    assert t.channel_order == "BGR" and torch.equal(t.std.flatten(), torch.ones(3))
    x = rand64(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = keras_resnet50_forward(L, caffe_bgr(x))
    expected = ref.mean(dim=(2, 3)) if pooled else ref
    assert t.feature_shape == tuple(expected.shape[1:])
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)


def test_keras_h5_whole_model_layout_and_grey(tmp_path, resnet_h5):
    _, L = resnet_h5
    path = tmp_path / "RadImageNet-ResNet50_notop.h5"
    write_keras_h5(path, [(n, L.get(n)) for n, _ in keras_resnet50_layers()], whole_model=True)
    t = build_teacher("radimagenet_resnet50", weights=path, input_size=SIZE).double()
    grey = rand64(2, 1, SIZE, SIZE)
    with torch.no_grad():
        expected = keras_resnet50_forward(L, caffe_bgr(grey.expand(-1, 3, -1, -1))).mean(dim=(2, 3))
    torch.testing.assert_close(t(grey), expected, atol=1e-5, rtol=1e-5)


def test_keras_converted_pt(tmp_path, resnet_h5):
    """The PyTorch conversion of the Keras weights (conv biases, stride on the first 1x1) in a .pt state dict."""
    from monai_rd.networks.zoo.keras import keras_resnet50_to_torch

    path, L = resnet_h5
    state = keras_resnet50_to_torch(path)
    for key in ("conv1.bias", "layer1.0.downsample.0.bias", "layer2.0.conv1.weight", "layer4.2.bn3.running_var"):
        assert key in state
    assert state["layer2.0.conv1.weight"].shape == (128, 256, 1, 1)
    pt = tmp_path / "RadImageNet-ResNet50_notop.pt"
    torch.save(state, pt)
    t = build_teacher("radimagenet_resnet50", weights=pt, input_size=SIZE).double()
    assert t.channel_order == "BGR"
    x = rand64(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = keras_resnet50_forward(L, caffe_bgr(x)).mean(dim=(2, 3))
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)
    # the stride really sits on the first 1x1 conv: a torchvision-layout model could not give these features
    from monai_rd.networks.zoo.keras import KerasResNet50

    assert KerasResNet50().layer2[0].conv1.stride == (2, 2)


def test_keras_densenet121_h5(tmp_path):
    layers = keras_densenet121_layers()
    path = tmp_path / "RadImageNet-DenseNet121_notop.h5"
    write_keras_h5(path, layers)
    L = {n: w for n, w in layers if w}
    t = build_teacher("radimagenet_densenet121", weights=path, input_size=SIZE).double()
    assert t.feature_dim == 1024 and t.channel_order == "BGR"
    x = rand64(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = keras_densenet121_forward(L, caffe_bgr(x)).mean(dim=(2, 3))
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------- official PyTorch release
class Backbone(nn.Module):
    """How the RadImageNet PyTorch release was made: the torchvision net without its classifier."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = nn.Sequential(*list(model.children())[:-1])


def _randomise_bn(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("arch,file,dim", [("resnet50", "ResNet50.pt", 2048), ("densenet121", "DenseNet121.pt", 1024)])
def test_official_pytorch(tmp_path, arch, file, dim):
    src = _randomise_bn(getattr(torchvision.models, arch)(weights=None)).double()
    wrapper = Backbone(src)
    assert next(iter(wrapper.state_dict())) in ("backbone.0.weight", "backbone.0.conv0.weight")
    torch.save(wrapper.state_dict(), tmp_path / file)
    t = build_teacher(f"radimagenet_{arch}", weights=tmp_path / file, input_size=SIZE).double()
    assert t.feature_dim == dim and t.channel_order == "RGB"
    x = rand64(2, 3, SIZE, SIZE)
    with torch.no_grad():
        if arch == "resnet50":
            src.fc = nn.Identity()
        else:
            src.classifier = nn.Identity()
        expected = src((x - t.mean) / t.std)  # torchvision's own forward, classifier removed
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)


def test_mismatch_names_file(tmp_path):
    torch.save(Backbone(torchvision.models.resnet18(weights=None)).state_dict(), tmp_path / "ResNet50.pt")
    with pytest.raises(WeightsMismatchError, match=r"ResNet50\.pt.*") as e:
        build_teacher("radimagenet_resnet50", weights=tmp_path / "ResNet50.pt", input_size=SIZE)
    assert "layer1.0.conv3.weight" in str(e.value)


def test_h5_for_the_wrong_network(tmp_path):
    write_keras_h5(tmp_path / "x.h5", keras_densenet121_layers()[:12])
    with pytest.raises(ValueError, match="conv1/conv"):
        build_teacher("radimagenet_resnet50", weights=tmp_path / "x.h5", input_size=SIZE)


def test_official_densenet_with_legacy_key_names(tmp_path):
    """Older torchvision DenseNet files spell ``denselayer1.norm.1.weight``; they load into ``norm1``."""
    import re

    src = _randomise_bn(torchvision.models.densenet121(weights=None))
    state = Backbone(src).state_dict()
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v for k, v in state.items()}
    assert "backbone.0.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.save(legacy, tmp_path / "DenseNet121.pt")
    t = build_teacher("radimagenet_densenet121", weights=tmp_path / "DenseNet121.pt", input_size=SIZE)
    src.classifier = nn.Identity()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(t(x), src((x - t.mean) / t.std), atol=1e-4, rtol=1e-4)


def test_missing_batchnorm_counters_are_filled(tmp_path):
    """Files older than PyTorch 0.4.1 have no ``num_batches_tracked``; everything else must still match."""
    src = _randomise_bn(torchvision.models.resnet50(weights=None))
    state = {k: v for k, v in Backbone(src).state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "ResNet50.pt")
    build_teacher("radimagenet_resnet50", weights=tmp_path / "ResNet50.pt", input_size=SIZE)
    del state["backbone.1.running_mean"]
    torch.save(state, tmp_path / "ResNet50.pt")
    with pytest.raises(WeightsMismatchError, match="bn1.running_mean"):
        build_teacher("radimagenet_resnet50", weights=tmp_path / "ResNet50.pt", input_size=SIZE)

"""Generic teachers (timm, MONAI, TorchScript, ONNX), safe loading, and RD with a spatial-map teacher."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torchvision

from monai_rd.networks import RDNet, StudentClassifier, WeightsMismatchError, build_teacher, read_state_dict

SIZE = 32


def _resnet18_features():
    torch.manual_seed(0)
    m = torchvision.models.resnet18(weights=None)
    m.fc = nn.Identity()
    return m.eval()


def test_timm_teacher_drops_classifier_and_uses_cfg(tmp_path):
    timm = pytest.importorskip("timm")
    src = timm.create_model("resnet18", pretrained=False, num_classes=7).eval()
    torch.save(src.state_dict(), tmp_path / "w.pth")  # a fine-tuned checkpoint, classifier included
    t = build_teacher("timm:resnet18", weights=tmp_path / "w.pth", input_size=SIZE)
    assert t.feature_dim == 512
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = src.forward_head(src.forward_features((x - t.mean) / t.std), pre_logits=True)
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)
    maps = build_teacher("timm:resnet18", weights=tmp_path / "w.pth", input_size=SIZE, pooled=False)
    assert maps.feature_shape == (512, 1, 1)
    assert build_teacher("timm:resnet18").input_size == 224  # from timm's pretrained_cfg
    with pytest.raises(KeyError, match="no architecture"):
        build_teacher("timm:not_a_net")


def test_timm_safetensors(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    src = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    save_file(src.state_dict(), tmp_path / "model.safetensors")
    t = build_teacher("timm:resnet18", weights=tmp_path / "model.safetensors", input_size=SIZE)
    x = torch.rand(1, 3, SIZE, SIZE)
    torch.testing.assert_close(t(x), src((x - t.mean) / t.std), atol=1e-5, rtol=1e-5)


def test_monai_densenet121(tmp_path):
    from monai.networks.nets import DenseNet121

    torch.manual_seed(0)
    src = DenseNet121(spatial_dims=2, in_channels=3, out_channels=3).eval()
    torch.save(src.state_dict(), tmp_path / "dn.pt")
    t = build_teacher("monai:DenseNet121", weights=tmp_path / "dn.pt", input_size=SIZE, out_channels=3)
    assert t.feature_dim == 1024
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():  # MONAI's own head without its last Linear: relu -> pool -> flatten
        f = src.features((x - t.mean) / t.std)
        expected = src.class_layers.flatten(src.class_layers.pool(src.class_layers.relu(f)))
    torch.testing.assert_close(t(x), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(WeightsMismatchError):
        build_teacher("monai:DenseNet169", weights=tmp_path / "dn.pt", input_size=SIZE)
    with pytest.raises(KeyError):
        build_teacher("monai:NoSuchNet")


def test_torchscript(tmp_path):
    src = _resnet18_features()
    torch.jit.trace(src, torch.rand(1, 3, SIZE, SIZE)).save(str(tmp_path / "t.pt"))
    t = build_teacher("torchscript", weights=tmp_path / "t.pt", input_size=SIZE)
    assert t.feature_dim == 512
    x = torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(t(x), src((x - t.mean) / t.std), atol=1e-5, rtol=1e-5)
    torch.save(src.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(RuntimeError, match="TorchScript"):
        build_teacher("torchscript", weights=tmp_path / "sd.pt", input_size=SIZE)


def _export_onnx(model, path, size, dynamic=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.rand(1, 3, size, size),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["features"],
            dynamic_axes={"image": {0: "batch"}} if dynamic else None,
        )


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic_batch", "fixed_batch_1"])
def test_onnx_black_box(tmp_path, dynamic):
    src = _resnet18_features()
    _export_onnx(src, tmp_path / "t.onnx", SIZE, dynamic)
    t = build_teacher("onnx", weights=tmp_path / "t.onnx")  # input size read from the model
    assert t.input_size == SIZE and t.feature_dim == 512
    assert list(t.parameters()) == []  # a literal black box
    x = torch.rand(3, 3, 48, 48)
    xr = torch.nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = src((xr - t.mean) / t.std)
    torch.testing.assert_close(t(x), expected, atol=1e-4, rtol=1e-4)
    import copy

    torch.testing.assert_close(copy.deepcopy(t)(x), t(x))  # the session is rebuilt from the file, not pickled


def test_onnx_teacher_in_rd_training_step(tmp_path):
    _export_onnx(_resnet18_features(), tmp_path / "t.onnx", SIZE)
    net = RDNet(build_teacher("onnx", weights=tmp_path / "t.onnx"), StudentClassifier("resnet18", num_classes=3))
    out = net(torch.rand(4, 3, SIZE, SIZE))
    loss = nn.functional.cross_entropy(out["z_T"], torch.tensor([0, 1, 2, 0]))
    loss.backward()  # gradients reach g and h; the black box needs none
    assert net.reprogrammer.blocks[0].fc1.weight.grad is not None


def test_spatial_map_teacher_rdnet_forward_backward():
    teacher = build_teacher("lvmmed_resnet50", input_size=64, pooled=False)
    assert teacher.feature_shape == (2048, 2, 2)
    net = RDNet(teacher, StudentClassifier("resnet18", num_classes=3))
    out = net(torch.rand(4, 3, SIZE, SIZE))
    assert out["f_T"].shape == out["f_S"].shape == (4, net.student.feature_dim)
    (out["z_T"].sum() + out["z_S"].sum()).backward()
    conv = net.reprogrammer.blocks[0].conv1
    assert isinstance(conv, nn.Conv2d) and conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.teacher.parameters())


class _Exploit:
    """A pickle payload: unpickling it would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_refused_by_default(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "image_encoder(resnet50).pth"
    with open(bad, "wb") as f:
        torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "x": _Exploit(str(marker))}, f)
    for name in ("pmc_clip_rn50", "lvmmed_resnet50", "radimagenet_resnet50", "timm:resnet18"):
        with pytest.raises(RuntimeError, match="trust_checkpoint=True"):
            build_teacher(name, weights=bad, input_size=SIZE)
        assert not marker.exists()
    # the payload is real: loading it with trust does run it
    read_state_dict(bad, trust_checkpoint=True)
    assert marker.exists()


def test_whole_pickled_module_needs_trust(tmp_path):
    src = torchvision.models.resnet50(weights=None).eval()
    torch.save(src, tmp_path / "lvmmed_resnet.torch")  # a whole pickled nn.Module
    with pytest.raises(RuntimeError, match="trust_checkpoint=True"):
        build_teacher("lvmmed_resnet50", weights=tmp_path / "lvmmed_resnet.torch", input_size=SIZE)
    t = build_teacher(
        "lvmmed_resnet50", weights=tmp_path / "lvmmed_resnet.torch", input_size=SIZE, trust_checkpoint=True
    )
    src.fc = nn.Identity()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(t(x), src((x - t.mean) / t.std), atol=1e-5, rtol=1e-5)


def test_every_zoo_name_is_registered():
    from monai_rd.networks import TEACHERS

    for name in (
        "pmc_clip_rn50",
        "radimagenet_resnet50",
        "radimagenet_densenet121",
        "lvmmed_resnet50",
        "lvmmed_vit_b",
        "biomedclip_vit_b",
        "torchscript",
        "onnx",
        "timm:resnet18",
        "monai:DenseNet121",
        "torchvision:resnet18",
    ):
        assert name in TEACHERS

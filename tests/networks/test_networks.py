"""RDNet, teachers, students, the reprogrammer and the registries."""

import os
import pickle

import pytest
import torch
import torchvision

from monai_rd.losses import RDLoss
from monai_rd.utils import Registry
from monai_rd.networks import (
    STUDENTS,
    TEACHERS,
    RDNet,
    Reprogrammer,
    StudentClassifier,
    WeightsMismatchError,
    build_student,
    build_teacher,
    read_state_dict,
)


@pytest.fixture(scope="module")
def rdnet():
    torch.manual_seed(0)
    return RDNet(build_teacher("resnet50"), StudentClassifier("resnet18", num_classes=3))


def test_forward_shapes_and_shared_head(rdnet):
    x = torch.rand(4, 3, 32, 32)
    out = rdnet(x)
    assert set(out) == {"f_T", "f_S", "z_T", "z_S"}
    assert out["f_T"].shape == out["f_S"].shape == (4, 512)
    assert out["z_T"].shape == out["z_S"].shape == (4, 3)
    rdnet.eval()
    out = rdnet(x)
    # both branches go through the very same head h
    assert torch.allclose(out["z_T"], rdnet.head(out["f_T"]))
    assert torch.allclose(out["z_S"], rdnet.student.head(out["f_S"]))
    assert rdnet.head is rdnet.deployable().head


def test_gradients_reach_g_h_and_s_never_t(rdnet):
    rdnet.train()
    teacher_bn_before = {k: v.clone() for k, v in rdnet.teacher.state_dict().items()}
    rdnet.zero_grad(set_to_none=True)
    out = rdnet(torch.rand(4, 3, 32, 32))
    RDLoss()(out, torch.tensor([0, 1, 2, 0]))["loss"].backward()
    assert all(not p.requires_grad and p.grad is None for p in rdnet.teacher.parameters())
    for part in (rdnet.reprogrammer, rdnet.student.backbone, rdnet.student.head):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    # T stays in eval mode when the trainer calls .train(), so its BatchNorm statistics never move
    assert not rdnet.teacher.training and all(not m.training for m in rdnet.teacher.modules())
    assert rdnet.student.training and rdnet.reprogrammer.training
    for k, v in rdnet.teacher.state_dict().items():
        assert torch.equal(v, teacher_bn_before[k]), k


@pytest.mark.parametrize("teacher_trains_head", [True, False])
def test_teacher_branch_trains_the_head_only_when_asked(teacher_trains_head):
    torch.manual_seed(0)
    net = RDNet(None, StudentClassifier("resnet18", num_classes=3), teacher_feature_shape=(64,),
                teacher_trains_head=teacher_trains_head)  # fmt: skip
    net.train()
    feats, x, y = torch.randn(6, 64), torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    out = net(x, teacher_features=feats)
    # the same logits either way: z_T = h(f_T) with h's current weights
    assert torch.allclose(out["z_T"], torch.nn.functional.linear(out["f_T"], net.head.weight, net.head.bias))
    torch.nn.functional.cross_entropy(out["z_T"], y).backward()  # the teacher branch's supervised term alone
    head_grads = [p.grad for p in net.head.parameters()]
    if teacher_trains_head:
        assert all(g is not None and g.abs().sum() > 0 for g in head_grads)
    else:
        assert all(g is None for g in head_grads)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.reprogrammer.parameters() if p.ndim > 1)
    assert all(p.grad is None for p in net.student.backbone.parameters())
    # the student's terms train h in both modes
    net.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x, teacher_features=feats)["z_S"], y).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.head.parameters())


def test_deployable_is_student_and_head_only(rdnet):
    rdnet.eval()
    student = rdnet.deployable()
    assert isinstance(student, torch.nn.Module)
    teacher_params = {id(p) for p in rdnet.teacher.parameters()} | {id(p) for p in rdnet.reprogrammer.parameters()}
    assert not teacher_params & {id(p) for p in student.parameters()}
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(student(x), rdnet(x)["z_S"])
    n_student = sum(p.numel() for p in student.parameters())
    assert n_student == sum(p.numel() for p in torchvision.models.resnet18().parameters()) - 1000 * 513 + 3 * 513


def test_teacher_features_bypass_the_teacher():
    net = RDNet(None, StudentClassifier("resnet18", 2), teacher_feature_shape=(2048,))
    out = net(torch.rand(3, 3, 32, 32), teacher_features=torch.randn(3, 2048))
    assert out["z_T"].shape == (3, 2)
    with pytest.raises(ValueError, match="teacher_features"):
        net(torch.rand(3, 3, 32, 32))
    with pytest.raises(ValueError, match="teacher_feature_shape"):
        RDNet(None, StudentClassifier("resnet18", 2))


@pytest.mark.parametrize(
    "name,width",
    [("resnet18", 512), ("mobilenet_v2", 1280), ("mobilenet_v3_small", 1024), ("shufflenet_v2_x1_0", 1024)],
)
def test_students_discover_their_width(name, width):
    backbone = build_student(name)
    assert backbone.feature_dim == width
    assert backbone(torch.rand(2, 3, 32, 32)).shape == (2, width)


@pytest.mark.parametrize("name,width", [("resnet50", 2048), ("densenet121", 1024), ("torchvision:resnet34", 512)])
def test_teachers_discover_their_width_and_are_frozen(name, width):
    teacher = build_teacher(name)
    assert teacher.feature_dim == width
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training


def test_teacher_preprocessing_is_its_own():
    teacher = build_teacher("resnet50", input_size=48, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.rand(2, 3, 32, 32)
    pre = teacher.preprocess(x)
    assert pre.shape == (2, 3, 48, 48)
    ref = (torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False) - 0.5) / 0.25
    assert torch.allclose(pre, ref)
    bgr = build_teacher("resnet50", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    bgr.channel_order = "BGR"
    assert torch.equal(bgr.preprocess(x), x.flip(1))


def test_registry_errors_list_names():
    with pytest.raises(KeyError, match="resnet18"):
        build_student("no_such_net")
    with pytest.raises(KeyError, match="torchvision has no"):
        build_teacher("torchvision:not_an_arch")
    reg = Registry("thing")
    reg.register("a", lambda **kw: torch.nn.Identity())
    with pytest.raises(KeyError, match="already registered"):
        reg.register("a", lambda **kw: torch.nn.Identity())
    assert "resnet18" in STUDENTS and "torchvision:resnet101" in TEACHERS and "nope" not in TEACHERS


def test_local_weights_file_loads_strictly(tmp_path):
    # torchvision's own release format: a plain state dict including the classifier
    source = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    student = build_student("resnet18", weights=path)
    source.fc = torch.nn.Identity()
    source.eval()
    student.eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(student(x), source(x), atol=1e-6)
    # DataParallel prefix and {"state_dict": ...} containers are handled
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, tmp_path / "wrapped.pt")
    build_student("resnet18", weights=tmp_path / "wrapped.pt")


def test_mismatched_weights_name_the_file_and_keys(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(WeightsMismatchError) as err:
        build_student("resnet18", weights=path)
    assert str(path) in str(err.value) and "unexpected keys: layer1.2" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_teacher("resnet50", weights=tmp_path / "missing.pth")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('RD_EVIL_MARKER', '/tmp/rd_evil_marker')}",))


def test_pickled_code_is_refused_by_default(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("RD_EVIL_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": _Evil()}}, f)
    with pytest.raises(RuntimeError, match="trust_checkpoint=True"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("shape", [(64,), (32, 4, 4)])
def test_reprogrammer_on_vectors_and_maps(shape):
    g = Reprogrammer(shape, out_features=16, num_blocks=3)
    out = g(torch.randn(5, *shape))
    assert out.shape == (5, 16)
    out.sum().backward()
    assert all(p.grad is not None for p in g.parameters())
    with pytest.raises(ValueError, match="num_blocks"):
        Reprogrammer(shape, 16, num_blocks=0)


def test_student_init_seed_is_independent_of_what_was_drawn_before():
    """``init_seed`` gives the weights an unseeded build draws right after ``torch.manual_seed(seed)``, whatever the
    run drew before (a teacher, ``g``), and leaves the global generator where it was."""
    torch.manual_seed(3)
    plain = StudentClassifier("resnet18", 3).state_dict()
    torch.manual_seed(11)
    torch.randn(1000)  # another network's initialisation
    before = torch.get_rng_state()
    seeded = StudentClassifier("resnet18", 3, init_seed=3).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert plain.keys() == seeded.keys() and all(torch.equal(plain[k], seeded[k]) for k in plain)
    other = StudentClassifier("resnet18", 3, init_seed=4).state_dict()
    assert not torch.equal(other["head.weight"], seeded["head.weight"])

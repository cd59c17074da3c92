"""monai_rd.methods: the registry, the method loss against NumPy, stage-1 freezing, taps, LoRA, VPT, indices."""

import numpy as np
import pytest
import torch

from monai_rd.data import with_indices
from monai_rd.handlers import MethodHandlers
from monai_rd.losses import MethodLoss
from monai_rd.methods import METHODS, build_method, method_options, needs_teacher
from monai_rd.networks import VisualPrompts, default_feature_layer
from monai_rd.networks import StudentClassifier, build_teacher

ALL = {"student", "teacher_linear", "teacher_finetune", "kd", "hint", "at", "vid", "crd", "semckd", "mgd", "norm",
       "direct_reprogramming", "lora_kd", "vpt_kd", "rd"}  # fmt: skip


@pytest.fixture(scope="module")
def teacher():
    return build_teacher("torchvision:resnet18")


@pytest.fixture(scope="module")
def vit():
    return build_teacher("timm:vit_tiny_patch16_224", input_size=32, img_size=32)


def student():
    return StudentClassifier("resnet18", 3)


def test_registry_holds_every_method_and_refuses_unknown_names():
    assert set(METHODS.names()) == ALL
    assert not needs_teacher("student") and all(needs_teacher(m) for m in ALL - {"student"})
    with pytest.raises(KeyError, match="Unknown method 'fitnet'.*hint"):
        build_method("fitnet", None, student(), 3)
    with pytest.raises(TypeError, match="method_options"):
        build_method("kd", build_teacher("torchvision:resnet18"), student(), 3, kd_wieght=2.0)


def test_student_method_needs_no_teacher_and_teacher_methods_refuse_none():
    method = build_method("student", None, student(), 3)
    assert method.stage1 is None and list(method.network.children()) == [method.network.student]
    for name in ("teacher_linear", "hint", "lora_kd", "vpt_kd"):
        with pytest.raises(ValueError, match=f"method '{name}' needs the teacher"):
            build_method(name, None, student(), 3)
    # logit methods can read a feature cache instead of the teacher
    kd = build_method("kd", None, student(), 3, teacher_feature_shape=(512,))
    out = kd.network(torch.rand(2, 3, 32, 32), teacher_features=torch.randn(2, 512))
    assert out["z_T"].shape == (2, 3)


def test_kd_weights_default_to_the_reference_recipes(vit):
    """RepDistiller's ``-r 0.1 -a 0.9`` (CE 0.1, KD 0.9) for every KD baseline; each weight an option."""
    assert build_method("kd", None, student(), 3, teacher_feature_shape=(512,)).loss_weights == {
        "ce_student": 0.1,
        "kd": 0.9,
    }
    assert build_method("vpt_kd", vit, student(), 3, image_size=32).loss_weights == {"ce_student": 0.1, "kd": 0.9}
    custom = build_method("kd", None, student(), 3, teacher_feature_shape=(512,), ce_weight=1.0, kd_weight=1.0)
    assert custom.loss_weights == {"ce_student": 1.0, "kd": 1.0}


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _cka(x, y):
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_method_loss_matches_numpy():
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    fs, ft = torch.randn(6, 5, generator=g), torch.randn(6, 7, generator=g)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    loss = MethodLoss({"ce_student": 0.7, "kd": 2.0, "cka": 0.5}, temperature=3.0)
    out = loss({"z_S": zs, "z_T": zt, "f_S": fs, "f_T": ft}, y)
    a, b = zs.double().numpy(), zt.double().numpy()
    ce = -_log_softmax(a)[np.arange(6), y.numpy()].mean()
    ls, lt = _log_softmax(a / 3), _log_softmax(b / 3)
    kd = (np.exp(lt) * (lt - ls)).sum(1).mean() * 9
    cka = 1 - _cka(fs.double().numpy(), ft.double().numpy())
    np.testing.assert_allclose([float(out[k]) for k in ("ce_student", "kd", "cka")], [ce, kd, cka], rtol=1e-5)
    np.testing.assert_allclose(float(out["loss"]), 0.7 * ce + 2 * kd + 0.5 * cka, rtol=1e-5)
    # multi-label: BCE with logits on multi-hot targets
    t = (torch.rand(6, 4, generator=g) > 0.5).float()
    bce = MethodLoss({"ce_student": 1.0}, multi_label=True)({"z_S": zs}, t)["ce_student"]
    p = 1 / (1 + np.exp(-a))
    np.testing.assert_allclose(float(bce), -(t.numpy() * np.log(p) + (1 - t.numpy()) * np.log(1 - p)).mean(), rtol=1e-5)
    with pytest.raises(KeyError, match="no terms"):
        MethodLoss({"hint": 1.0})


def test_stage1_branch_is_frozen_in_the_distillation_stage(teacher):
    method = build_method("direct_reprogramming", teacher, student(), 3, image_size=32)
    branch = method.stage1_network.classifier
    stage1 = {id(p) for p in method.stage1_parameters()}
    assert stage1 == {id(p) for p in list(branch.reprogrammer.parameters()) + list(branch.head.parameters())}
    assert not stage1 & {id(p) for p in method.parameters()}
    method.network.train()
    assert not method.network.branch.training
    out = method.network(torch.rand(2, 3, 32, 32))
    assert not out["z_T"].requires_grad and out["z_S"].requires_grad
    method.loss(out, torch.tensor([0, 1]))["loss"].backward()
    assert all(p.grad is None for p in branch.parameters())


def test_default_feature_layers(teacher, vit):
    assert default_feature_layer(student(), 32) == "backbone.model.layer4"
    assert default_feature_layer(teacher, 32) == "backbone.model.layer4"
    assert default_feature_layer(vit, 32) == "backbone.model.model.norm"
    method = build_method(
        "hint", vit, student(), 3, image_size=64, feature_layers="last"
    )  # ViT tokens (1 + 2x2) vs ResNet 2x2 map
    # the tap knows the ViT's layout: the CLS token is dropped and the 2x2 patch tokens become a map
    assert method.info["teacher_shapes"] == [(192, 2, 2)] and method.info["student_shapes"] == [(512, 2, 2)]
    out = method.network(torch.rand(2, 3, 64, 64))
    assert [tuple(f.shape) for f in out["feat_T"]] == [(2, 192, 2, 2)]
    assert torch.isfinite(method.loss(out, torch.tensor([0, 1]))["hint"])


def test_lora_adapts_a_copy_and_starts_as_the_teacher(vit):
    method = build_method("lora_kd", vit, student(), 3, lora_rank=2)
    tuned = method.stage1_network.classifier.encoder
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(not p.requires_grad for p in vit.parameters())  # the original teacher is untouched
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(tuned(x), vit(x))  # LoRA's B starts at 0
    opt = torch.optim.SGD([p for p in tuned.parameters() if p.requires_grad], lr=1.0)
    for _ in range(2):  # B moves first, then A's update reaches the output
        opt.zero_grad()
        tuned(x).pow(2).sum().backward()
        opt.step()
    assert not torch.allclose(tuned(x), vit(x))
    # a CNN teacher gets conv LoRA (peft) on the convolutions its forward pass runs
    cnn = build_method("lora_kd", build_teacher("torchvision:resnet18"), student(), 3, image_size=32)
    lora = [n for n, p in cnn.stage1_network.named_parameters() if p.requires_grad and "lora_" in n]
    assert len(lora) == 2 * 20 and all(".conv" in n or "downsample.0" in n for n in lora)


def test_visual_prompts_are_inserted_after_the_cls_token(vit):
    prompts = VisualPrompts(3, 4, num_prefix_tokens=1)
    tokens = torch.arange(2 * 5 * 4, dtype=torch.float32).view(2, 5, 4)
    out = prompts.insert(tokens)
    assert out.shape == (2, 8, 4)
    torch.testing.assert_close(out[:, :1], tokens[:, :1])
    torch.testing.assert_close(out[:, 1:4], prompts.prompts.detach().expand(2, -1, -1))
    torch.testing.assert_close(out[:, 4:], tokens[:, 1:])
    method = build_method("vpt_kd", vit, student(), 3, num_prompts=3)
    tuned = method.stage1_network.classifier.encoder
    assert [n for n, p in tuned.named_parameters() if p.requires_grad] == ["prompts.prompts"]
    seen = []
    tuned.teacher.backbone.model.model.blocks[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    tuned(torch.rand(2, 3, 32, 32))
    assert seen == [torch.Size([2, 1 + 3 + 4, 192])]  # CLS + 3 prompts + 2x2 patches
    with pytest.raises(ValueError, match="Vision Transformer"):
        build_method("vpt_kd", build_teacher("torchvision:resnet18"), student(), 3)


def test_with_indices_and_the_crd_handler(teacher):
    data = with_indices([{"image": "a"}, {"image": "b"}])
    assert data == [{"image": "a", "index": 0}, {"image": "b", "index": 1}]
    with pytest.raises(ValueError, match="already has 'index'"):
        with_indices([{"index": 5}])

    from ignite.engine import Engine

    method = build_method("crd", teacher, student(), 3, image_size=32, num_data=4)
    assert method.sample_indices
    engine = Engine(lambda e, b: None)
    MethodHandlers(method).attach(engine)
    engine.run([{"image": 0, "index": torch.tensor([2, 3])}], max_epochs=1)
    assert method.loss.index.tolist() == [2, 3]
    engine = Engine(lambda e, b: None)
    MethodHandlers(method).attach(engine)
    with pytest.raises(KeyError, match="'index'"):
        engine.run([{"image": 0}], max_epochs=1)


def test_rd_ablation_switches(teacher):
    rd = build_method("rd", teacher, student(), 3, detach_teacher=True, use_kd=False, multi_label=True)
    assert rd.loss.detach_teacher and rd.loss.multi_label and rd.loss_weights["kd"] == 0.0 and rd.stage1 is None
    assert isinstance(rd.loss_weights["cka"], dict)  # the default linear schedule stays
    assert rd.network.teacher_trains_head  # the library's default is the paper's co-trained head
    rd = build_method("rd", teacher, student(), 3, teacher_trains_head=False)
    assert not rd.network.teacher_trains_head and rd.info["teacher_trains_head"] is False
    assert "teacher_trains_head" not in method_options("rd")  # a bundle id of its own, not a method option
    assert "teacher_warmup" not in method_options("rd") and rd.stage1 is None and rd.info["teacher_warmup"] is False


def test_rd_teacher_warmup_is_a_stage_1_on_the_shared_g_and_h_that_co_training_trains_on(teacher):
    rd = build_method("rd", teacher, student(), 3, teacher_trains_head=False, teacher_warmup=True)
    net, warm = rd.network, rd.stage1
    assert warm is not None and not warm.frozen and rd.info["teacher_warmup"] is True
    shared = {id(p) for p in net.reprogrammer.parameters()} | {id(p) for p in net.head.parameters()}
    assert {id(p) for p in rd.stage1_parameters()} == shared  # g and h, no copies, never the teacher or S
    main = {id(p) for p in rd.parameters()}
    assert shared <= main  # unlike a frozen stage 1, co-training goes on training g and h
    assert main - shared == {id(p) for p in net.student.backbone.parameters()}
    # the warm-up's prediction is RD's teacher branch, z_T = h(g(T(x))), recomputed here from its parts
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    net.train()
    with torch.no_grad():
        f_t = net.reprogrammer(net.teacher(x).float())
        expected = f_t @ net.head.weight.T + net.head.bias
    out = warm.network(x)
    assert torch.allclose(out["z_S"], expected, atol=1e-5) and out["z_T"] is out["z_S"]
    terms = warm.loss(out, y)
    reference = float(torch.nn.functional.cross_entropy(expected, y))
    assert float(terms["loss"].detach()) == pytest.approx(reference, rel=1e-5)
    # a step of the warm-up moves RDNet's own g and h (what co-training starts from), not the student's backbone
    before = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
    opt = torch.optim.SGD(rd.stage1_parameters(), lr=0.1)
    terms["loss"].backward()
    opt.step()
    moved = {n for n, p in net.named_parameters() if p.requires_grad and not torch.equal(p, before[n])}
    assert moved and all(n.startswith(("reprogrammer.", "student.head.")) for n in moved)
    assert any(n.startswith("student.head.") for n in moved) and any(n.startswith("reprogrammer.") for n in moved)
    # a frozen stage 1 (KD's probe) is still left out of the main stage
    kd = build_method("kd", teacher, student(), 3)
    assert kd.stage1.frozen and not {id(p) for p in kd.stage1_parameters()} & {id(p) for p in kd.parameters()}


def test_rd_reprogrammer_lr_scale_trains_g_at_its_fraction_of_the_learning_rate(teacher):
    plain = build_method("rd", teacher, student(), 3)
    groups = plain.param_groups(0.01)  # no scale: the one group of every earlier run (their checkpoints resume)
    assert len(groups) == 1 and groups[0]["lr"] == 0.01 and groups[0]["params"] == plain.parameters()
    assert "reprogrammer_lr_scale" not in method_options("rd") and plain.info["reprogrammer_lr_scale"] == 1.0
    rd = build_method("rd", teacher, student(), 3, teacher_trains_head=False, teacher_warmup=True,
                      reprogrammer_lr_scale=0.1)  # fmt: skip
    g_ids = {id(p) for p in rd.network.reprogrammer.parameters()}
    for groups, params in (
        (rd.param_groups(0.01), rd.parameters()),
        (rd.stage1_param_groups(0.01), rd.stage1_parameters()),
    ):
        assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.001)]
        assert {id(p) for p in groups[1]["params"]} == g_ids  # g, in both stages
        assert not {id(p) for p in groups[0]["params"]} & g_ids
        assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in params)  # a partition
    # one plain SGD step moves g by 0.1 * lr * grad and the student and head by lr * grad
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    net = rd.network.train()
    opt = torch.optim.SGD(rd.param_groups(0.01), lr=0.01)
    rd.loss(net(x), y)["loss"].backward()
    before = {n: (p.detach().clone(), p.grad.detach().clone()) for n, p in net.named_parameters() if p.grad is not None}
    opt.step()
    for name, p in net.named_parameters():
        if name in before:
            scale = 0.1 if name.startswith("reprogrammer.") else 1.0
            expected = before[name][0].double() - 0.01 * scale * before[name][1].double()
            assert torch.allclose(p.detach().double(), expected, atol=1e-7), name
    assert any(n.startswith("reprogrammer.") for n in before) and any(n.startswith("student.") for n in before)
    with pytest.raises(ValueError, match="reprogrammer_lr_scale"):
        build_method("rd", teacher, student(), 3, reprogrammer_lr_scale=0.0)


@pytest.mark.parametrize(
    "method, layers",
    [("at", ["layer1", "layer2", "layer3", "layer4"]), ("vid", ["layer1", "layer2", "layer3", "layer4"]),
     ("semckd", ["layer1", "layer2", "layer3", "layer4"]), ("hint", ["layer2"]), ("mgd", ["layer4"]), ("norm", ["layer4"])],
)  # fmt: skip
def test_feature_methods_tap_the_layers_their_reference_code_taps(method, layers):
    """RepDistiller distils AT and VID at every stage (feat[1:-1]) and FitNets at --hint_layer 2 (the second stage's
    output); SemCKD every stage; MGD's classification code and NORM the last map. feature_layers='last': the last
    map for all; explicit teacher_layers/student_layers win."""
    from monai_rd.networks import StudentClassifier, build_teacher

    torch.manual_seed(0)
    teacher = build_teacher("torchvision:resnet18", "random")
    kw = dict(image_size=64, num_data=8, batch_size=4)
    built = build_method(method, teacher, StudentClassifier("resnet18", 3), 3, **kw)
    assert built.info["teacher_layers"] == [f"backbone.model.{n}" for n in layers]
    assert built.info["student_layers"] == [f"backbone.model.{n}" for n in layers]
    last = build_method(method, teacher, StudentClassifier("resnet18", 3), 3, feature_layers="last", **kw)
    assert last.info["teacher_layers"] == ["backbone.model.layer4"] == last.info["student_layers"]
    given = build_method(method, teacher, StudentClassifier("resnet18", 3), 3, teacher_layers="backbone.model.layer4",
                         student_layers="backbone.model.layer4", **kw)  # fmt: skip
    assert given.info["teacher_layers"] == ["backbone.model.layer4"]
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    built.loss(built.network.train()(x), y)["loss"].backward()  # every tapped pair reaches the student
    assert all(p.grad is not None for p in built.network.student.backbone.model.layer2.parameters())
    with pytest.raises(ValueError, match="feature_layers is one of"):
        build_method(method, teacher, StudentClassifier("resnet18", 3), 3, feature_layers="all", **kw)


def test_stage_ends_skip_squeeze_excitation_gates():
    """MobileNetV3's SE gates emit [B, C, 1, 1] maps inside a stage: they are not a stage of their own."""
    from monai_rd.networks import StudentClassifier, default_feature_layers

    layers = default_feature_layers(StudentClassifier("mobilenet_v3_small", 3), 64, 4)
    assert not any("scale_activation" in n or ".fc" in n for n in layers), layers
    assert layers[-1] == "backbone.model.features"

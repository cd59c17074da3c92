"""Mixed precision, channels_last and torch.compile switches (CPU)."""

import warnings

import pytest
import torch
from ignite.engine import Events
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_rd.engines import RDTrainer
from monai_rd.handlers import LossWeightSchedule
from monai_rd.losses import RDLoss, linear_cka
from monai_rd.networks import RDNet, StudentClassifier, autocast_dtype, build_teacher, prepare_network


def _loader(n=8, batch=4):
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.rand(batch, 3, 32, 32, generator=g), "label": torch.arange(batch) % 3}
        for _ in range(0, n, batch)
    ]


def test_autocast_dtype_names():
    assert autocast_dtype("bfloat16") is torch.bfloat16 and autocast_dtype("bf16") is torch.bfloat16
    assert autocast_dtype("fp16") is torch.float16 and autocast_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="amp_dtype"):
        autocast_dtype("float32")


def test_linear_cka_upcasts_low_precision_features_to_float32():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 8, generator=g), torch.randn(16, 5, generator=g)
    ref = linear_cka(x.double(), y.double())
    low = linear_cka(x.bfloat16(), y.bfloat16())
    assert low.dtype == torch.float32
    # bf16 has ~3 significant digits: the inputs are rounded, the arithmetic is float32
    assert float(low) == pytest.approx(float(linear_cka(x.bfloat16().float(), y.bfloat16().float())), abs=1e-6)
    assert float(low) == pytest.approx(float(ref), abs=2e-2)


@pytest.mark.slow
def test_bf16_autocast_training_on_cpu_runs_in_bf16_and_stays_finite():
    torch.manual_seed(0)
    network = prepare_network(RDNet(build_teacher("torchvision:resnet18"), StudentClassifier("resnet18", 3)), "cpu")
    loss = RDLoss()
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI builds a CUDA GradScaler, which disables itself on CPU
        trainer = RDTrainer(
            device="cpu", max_epochs=2, train_data_loader=_loader(), network=network, optimizer=optimizer,
            loss_function=loss, postprocessing=Compose([Activationsd("pred", softmax=True), AsDiscreted("label", to_onehot=3)]),
            train_handlers=[LossWeightSchedule()], amp=True, amp_kwargs={"dtype": torch.bfloat16},
        )  # fmt: skip
    dtypes, losses = [], []
    network.student.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
    before = [p.clone() for p in network.student.parameters()]
    trainer.run()
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the student's logits were computed under bf16 autocast
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert all(p.dtype == torch.float32 for p in network.parameters())  # master weights stay fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, network.student.parameters()))


def test_channels_last_keeps_outputs_and_state_dict_keys():
    torch.manual_seed(0)
    net = StudentClassifier("resnet18", 3).eval()
    x = torch.rand(2, 3, 32, 32)
    ref = net(x)
    keys = list(net.state_dict())
    out = prepare_network(net, "cpu", channels_last=True)
    assert out is net and list(net.state_dict()) == keys
    convs = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert torch.allclose(net(x), ref, atol=1e-5)


@pytest.mark.slow
def test_compile_is_in_place_and_keeps_the_module():
    """Smoke test with the ``eager`` backend (graph capture by dynamo, no C++ codegen): inductor would need a
    compiler toolchain and minutes on the shared CPU, so the default backend is not run here."""
    torch.manual_seed(0)
    net = StudentClassifier("resnet18", 3).eval()
    x = torch.rand(2, 3, 32, 32)
    ref = net(x)
    keys = list(net.state_dict())
    out = prepare_network(net, "cpu", compile=True, compile_kwargs={"backend": "eager"})
    assert out is net and isinstance(net, StudentClassifier) and list(net.state_dict()) == keys
    assert net._compiled_call_impl is not None
    assert torch.allclose(net(x), ref, atol=1e-5)

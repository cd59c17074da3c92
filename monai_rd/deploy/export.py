"""Export the deployable student (``h(S(x))``) to TorchScript and ONNX, with parity checked on load-back.

Both formats take ``[B, 3, H, W]`` images in ``[0, 1]`` (normalisation is inside the model) and return
logits ``[B, C]``; the batch dimension ``B`` is dynamic. Parity is measured by loading the written files
back (``torch.jit.load``, ``onnxruntime.InferenceSession``) and comparing with the eager model on random
inputs of several batch sizes; a maximum absolute difference at or above ``tolerance`` (times the largest eager
output where that exceeds 1: float32 resolves a logit of 1000 only to 6e-5) is an error.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from monai_rd.networks import StudentClassifier
from monai_rd.networks.checkpoint import read_state_dict
from monai_rd.utils import atomic_path

__all__ = [
    "example_input_shape",
    "ParityError",
    "ExportResult",
    "load_student",
    "to_torchscript",
    "to_onnx",
    "onnx_session",
    "EXPORTERS",
    "RUNNERS",
    "parity_difference",
    "export_student",
    "FORMAT_SUFFIX",
]

FORMAT_SUFFIX = {"torchscript": ".ts", "onnx": ".onnx"}
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class ParityError(RuntimeError):
    """An exported model disagrees with the eager PyTorch model by ``tolerance`` or more."""


@dataclass
class ExportResult:
    """What :func:`export_student` wrote and measured.

    Attributes:
        files: format name (``"torchscript"``, ``"onnx"``) -> written path.
        max_abs_diff: format name -> max ``|exported - eager|`` over all checked batch sizes.
        batch_sizes: the batch sizes that were checked.
        tolerance: the parity bound that was enforced.
    """

    files: dict[str, str] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    batch_sizes: tuple[int, ...] = ()
    tolerance: float = 1e-4
    #: ``max(1, max |eager output|)``: the differences are bounded by ``tolerance x scale`` (float32 rounds a
    #: logit of 1500 to steps of 1.2e-4, so a fixed absolute bound would fail any well-trained student)
    scale: float = 1.0

    def summary(self) -> str:
        bound = f"tolerance {self.tolerance:g}" + (f" x {self.scale:.4g}" if self.scale > 1 else "")
        lines = [
            f"{fmt:12s} {self.files[fmt]}  max|diff| vs eager = {self.max_abs_diff[fmt]:.3e} "
            f"(batch sizes {list(self.batch_sizes)}, {bound})"
            for fmt in self.files
        ]
        return "\n".join(lines)


def load_student(
    checkpoint: str | os.PathLike, student: str, num_classes: int | None = None, trust_checkpoint: bool = False
) -> StudentClassifier:
    """Rebuild ``StudentClassifier(student, C)`` and load the state dict saved by training (``model.pt``).

    ``num_classes`` defaults to the rows of ``head.weight`` in the checkpoint. Loading is strict and
    ``weights_only=True`` unless ``trust_checkpoint``; a mismatch names the offending keys.

    Returns:
        the student in eval mode on the CPU.
    """
    from monai_rd.networks.checkpoint import load_weights

    if num_classes is None:
        state = read_state_dict(checkpoint, trust_checkpoint=trust_checkpoint)
        if "head.weight" not in state:
            raise KeyError(
                f"{os.fspath(checkpoint)!r} has no 'head.weight': it is not a StudentClassifier state dict "
                f"(keys start with {sorted(state)[:3]}); pass --num_classes and the right checkpoint."
            )
        num_classes = int(state["head.weight"].shape[0])
    # a 3D student stores its normalisation as [1, C_in, 1, 1, 1]: the checkpoint says whether it is a volume model
    mean = read_state_dict(checkpoint, trust_checkpoint=trust_checkpoint).get("mean")
    spatial_dims = mean.ndim - 2 if mean is not None and mean.ndim in (4, 5) else 2
    in_channels = int(mean.shape[1]) if spatial_dims == 3 else None
    model = StudentClassifier(student, num_classes, spatial_dims=spatial_dims, in_channels=in_channels)
    load_weights(model, checkpoint, trust_checkpoint=trust_checkpoint)
    return model.eval()


def example_input_shape(model: nn.Module, image_size: int) -> tuple[int, ...]:
    """Input shape without batch: ``(3, s, s)`` for a 2D student, ``(C_in, s, s, s)`` for a volume student."""
    if getattr(model, "spatial_dims", 2) == 3:
        return (int(model.mean.shape[1]), image_size, image_size, image_size)
    return (3, image_size, image_size)


def to_torchscript(
    model: nn.Module, path: str | os.PathLike, example: torch.Tensor | None = None, use_trace: bool = False
) -> str:
    """Write ``model`` as TorchScript (``torch.jit.script``; ``torch.jit.trace`` on ``example`` if ``use_trace``).

    Scripting keeps every dimension symbolic, so the batch is dynamic by construction. A copy without forward
    hooks is converted (a training run's feature taps are hooks on the student; they are not part of the model).
    """
    path = os.path.abspath(os.fspath(path))
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    with atomic_path(path, suffix=".pt") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        if use_trace:
            if example is None:
                raise ValueError("use_trace=True needs an example input [B, 3, H, W].")
            converted = torch.jit.trace(model, example, check_trace=False)
        else:
            converted = torch.jit.script(model)
        torch.jit.save(converted, tmp)
    return path


def to_onnx(model: nn.Module, path: str | os.PathLike, example: torch.Tensor, opset: int = 17) -> str:
    """Write ``model`` as ONNX with input ``image`` ``[batch, 3, H, W]`` and output ``logits`` ``[batch, C]``.

    The TorchScript-based exporter is used (no ``onnxscript`` dependency); ``batch`` is a dynamic axis.
    """
    path = os.path.abspath(os.fspath(path))
    model = model.eval()
    with atomic_path(path, suffix=".onnx") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), tmp, dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )  # fmt: skip
        import onnx

        onnx.checker.check_model(tmp)
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU ``InferenceSession`` for ``path`` (``threads`` intra-op threads if given)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"])


def _torchscript_runner(path: str) -> Callable[[torch.Tensor], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        module = torch.jit.load(path, map_location="cpu").eval()

    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(x).numpy()

    return run


def _onnx_runner(path: str) -> Callable[[torch.Tensor], np.ndarray]:
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x.numpy()})[0]


# format name -> (writer(model, path, example), loader(path) -> callable on a CPU tensor returning numpy)
EXPORTERS: dict[str, Callable[..., str]] = {
    "torchscript": lambda model, path, example: to_torchscript(model, path),
    "onnx": lambda model, path, example: to_onnx(model, path, example),
}
RUNNERS: dict[str, Callable[[str], Callable[[torch.Tensor], np.ndarray]]] = {
    "torchscript": _torchscript_runner,
    "onnx": _onnx_runner,
}


def parity_difference(
    model: nn.Module, runner: Callable[[torch.Tensor], np.ndarray], inputs: Sequence[torch.Tensor]
) -> tuple[float, float]:
    """``(max |runner(x) - model(x)|, max(1, max |model(x)|))`` over ``inputs``, from one eager pass: the worst
    difference and the scale a parity tolerance is relative to. The output shapes must match exactly."""
    worst, scale = 0.0, 1.0
    model = model.eval()
    for x in inputs:
        with torch.no_grad():
            expected = model(x).numpy()
        got = np.asarray(runner(x))
        if got.shape != expected.shape:
            raise ParityError(f"exported output shape {got.shape} != eager {expected.shape} for input {tuple(x.shape)}")
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))))
        scale = max(scale, float(np.max(np.abs(expected))))
    return worst, scale


def export_student(
    model: nn.Module,
    output_dir: str | os.PathLike,
    image_size: int = 224,
    formats: Sequence[str] = ("torchscript", "onnx"),
    batch_sizes: Sequence[int] = (1, 3),
    tolerance: float = 1e-4,
    basename: str = "model",
    seed: int = 0,
) -> ExportResult:
    """Export ``model`` (CPU, fp32) to each of ``formats`` under ``output_dir`` and check parity on load-back.

    Args:
        model: the deployable student, ``[B, 3, image_size, image_size]`` -> ``[B, C]`` (a volume student:
            ``[B, C_in, image_size, image_size, image_size]``).
        output_dir: folder for ``<basename>.ts`` / ``<basename>.onnx``.
        batch_sizes: the (at least two different) batch sizes the exported files are run with, which
            checks that the batch dimension is dynamic.
        tolerance: the largest allowed max absolute difference to the eager model, relative to the largest
            eager output when that exceeds 1 (``|diff| < tolerance x max(1, max |eager|)``).

    Raises:
        ParityError: a format differs from eager PyTorch by ``tolerance`` or more (the files are kept, so
            they can be inspected, and the message gives every format's difference).
    """
    unknown = [f for f in formats if f not in EXPORTERS]
    if unknown:
        raise KeyError(f"Unknown export format(s) {unknown}; available: {sorted(EXPORTERS)}.")
    model = model.float().cpu().eval()
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.rand(b, *example_input_shape(model, image_size), generator=generator) for b in batch_sizes]
    result = ExportResult(batch_sizes=tuple(batch_sizes), tolerance=tolerance)
    for fmt in formats:
        path = os.path.join(os.fspath(output_dir), basename + FORMAT_SUFFIX[fmt])
        result.files[fmt] = EXPORTERS[fmt](model, path, inputs[0])
        result.max_abs_diff[fmt], result.scale = parity_difference(model, RUNNERS[fmt](result.files[fmt]), inputs)
    failed = {f: d for f, d in result.max_abs_diff.items() if not d < tolerance * result.scale}
    if failed:
        raise ParityError(f"Export parity failed (tolerance {tolerance:g}): {failed}\n{result.summary()}")
    return result

"""Deployment cost of a teacher/student pair (the paper's Table 6): parameters, FLOPs and latency per batch.

Both models are measured as deployed classifiers of the same form, ``h(F(normalise(x)))``: the student is
:class:`~monai_rd.networks.StudentClassifier`; the teacher is its backbone with a linear head of the same
width, i.e. the foundation model fine-tuned for the task (the alternative RD avoids deploying).

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`: one multiply-add is 2 FLOPs and
only matrix products and convolutions are counted (bias additions, normalisation and activations are not).
Latencies are the median over ``repeats`` timed runs after ``warmup`` untimed runs, for one batch, on the
CPU (or the model's device for eager); they depend on the machine and its load.
"""

from __future__ import annotations

import csv
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from monai_rd.deploy.export import example_input_shape
from monai_rd.networks import StudentClassifier, VolumeTeacherClassifier, build_teacher
from monai_rd.utils import atomic_write_text

__all__ = [
    "BACKENDS",
    "ModelCost",
    "count_parameters",
    "count_flops",
    "median_latency",
    "teacher_classifier",
    "VolumeTeacherClassifier",
    "model_cost",
    "cost_table",
    "format_table",
    "table_csv",
]


@dataclass
class ModelCost:
    """Cost of one deployed classifier.

    Attributes:
        role: ``"teacher"`` or ``"student"``.
        name: registry name.
        params: number of parameters (all, trainable or not).
        flops: FLOPs of one forward pass of a ``[batch_size, 3, image_size, image_size]`` batch.
        latency_ms: backend -> median milliseconds per batch, or ``None`` with the reason in ``errors``.
    """

    role: str
    name: str
    params: int
    flops: int
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def count_parameters(model: nn.Module) -> int:
    """Total number of parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of ``model(example)`` as counted by ``FlopCounterMode`` (2 per multiply-add)."""
    model = model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(example)
    return int(counter.get_total_flops())


def median_latency(fn: Callable[[], object], warmup: int = 3, repeats: int = 10) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs, after ``warmup`` untimed runs."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def teacher_classifier(name: str, num_classes: int, weights: str | os.PathLike | None = None) -> StudentClassifier:
    """The teacher deployed as a classifier: its backbone + a linear head (normalisation inside, as a student)."""
    teacher = build_teacher(name, weights=weights)
    if getattr(teacher, "spatial_dims", 2) == 3:  # volume teachers: the frozen encoder (own preprocessing) + a head
        return VolumeTeacherClassifier(teacher, num_classes)
    return StudentClassifier(
        teacher.backbone, num_classes, mean=teacher.mean.flatten().tolist(), std=teacher.std.flatten().tolist()
    )


def _eager_runner(model: nn.Module, x: torch.Tensor, workdir: str) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return model(x)

    return run


def _torchscript_runner(model: nn.Module, x: torch.Tensor, workdir: str) -> Callable[[], object]:
    from monai_rd.deploy.export import RUNNERS, to_torchscript

    run = RUNNERS["torchscript"](to_torchscript(model, os.path.join(workdir, "model.ts")))
    return lambda: run(x)


def _onnx_runner(model: nn.Module, x: torch.Tensor, workdir: str) -> Callable[[], object]:
    from monai_rd.deploy.export import onnx_session, to_onnx

    session = onnx_session(to_onnx(model, os.path.join(workdir, "model.onnx"), x), threads=torch.get_num_threads())
    name, array = session.get_inputs()[0].name, x.numpy()
    return lambda: session.run(None, {name: array})


# backend name -> factory(model, example batch, scratch folder) -> a zero-argument callable running one batch
BACKENDS: dict[str, Callable[[nn.Module, torch.Tensor, str], Callable[[], object]]] = {
    "eager": _eager_runner,
    "torchscript": _torchscript_runner,
    "onnxruntime": _onnx_runner,
}


def model_cost(
    model: nn.Module,
    role: str,
    name: str,
    image_size: int = 224,
    batch_size: int = 32,
    backends: Sequence[str] = tuple(BACKENDS),
    warmup: int = 3,
    repeats: int = 10,
) -> ModelCost:
    """Parameters, FLOPs and per-backend median latency of ``model`` on one CPU batch."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise KeyError(f"Unknown backend(s) {unknown}; available: {sorted(BACKENDS)}.")
    model = model.float().cpu().eval()
    x = torch.rand(batch_size, *example_input_shape(model, image_size), generator=torch.Generator().manual_seed(0))
    cost = ModelCost(role=role, name=name, params=count_parameters(model), flops=count_flops(model, x))
    with tempfile.TemporaryDirectory(prefix="monai_rd_cost_") as workdir:
        for backend in backends:
            try:
                run = BACKENDS[backend](model, x, workdir)
            except Exception as e:  # a model a backend cannot convert is reported, not fatal
                cost.latency_ms[backend] = None
                cost.errors[backend] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                continue
            cost.latency_ms[backend] = median_latency(run, warmup=warmup, repeats=repeats)
    return cost


def cost_table(
    teacher: str,
    students: Sequence[str],
    num_classes: int = 3,
    image_size: int = 224,
    batch_size: int = 32,
    backends: Sequence[str] = tuple(BACKENDS),
    warmup: int = 3,
    repeats: int = 10,
    teacher_weights: str | os.PathLike | None = None,
    spatial_dims: int = 2,
    in_channels: int = 1,
) -> list[ModelCost]:
    """Costs of the teacher (first row) and of each student, all built by registry name.

    ``spatial_dims=3``: volumes ``[batch_size, in_channels, s, s, s]`` (``s = image_size``), 3D students
    (``monai:resnet10`` ...) and a volume teacher (``swin_unetr_ssl``, ``slicewise:<2D teacher>`` ...).
    """
    kwargs = dict(image_size=image_size, batch_size=batch_size, backends=backends, warmup=warmup, repeats=repeats)
    rows = [model_cost(teacher_classifier(teacher, num_classes, teacher_weights), "teacher", teacher, **kwargs)]
    for student in students:
        options = {"spatial_dims": 3, "in_channels": in_channels} if spatial_dims == 3 else {}
        rows.append(model_cost(StudentClassifier(student, num_classes, **options), "student", student, **kwargs))
    return rows


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a is not None and b else "n/a"


def _records(rows: Sequence[ModelCost], raw: bool = False) -> tuple[list[str], list[list[str]]]:
    teacher = next((r for r in rows if r.role == "teacher"), rows[0])
    backends = list(dict.fromkeys(b for r in rows for b in r.latency_ms))
    header = [
        "role",
        "model",
        "params" if raw else "params (M)",
        "FLOPs/batch" if raw else "GFLOPs/batch",
        *(f"{b} (ms/batch)" for b in backends),
        "T/S params",
        "T/S FLOPs",
        *(f"T/S {b}" for b in backends),
    ]
    records = []
    for r in rows:
        lat = [r.latency_ms.get(b) for b in backends]
        records.append([
            r.role, r.name,
            *((str(r.params), str(r.flops)) if raw else (f"{r.params / 1e6:.2f}", f"{r.flops / 1e9:.2f}")),
            *("n/a" if v is None else f"{v:.3f}" if raw else f"{v:.1f}" for v in lat),
            _ratio(teacher.params, r.params), _ratio(teacher.flops, r.flops),
            *(_ratio(teacher.latency_ms.get(b), r.latency_ms.get(b)) for b in backends),
        ])  # fmt: skip
    return header, records


def format_table(rows: Sequence[ModelCost], markdown: bool = False) -> str:
    """The cost table as aligned text (or a Markdown table), with teacher/student ratios."""
    header, records = _records(rows)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(rec) + " |" for rec in records]
    else:
        widths = [max(len(c), *(len(rec[i]) for rec in records)) for i, c in enumerate(header)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in [header, *records]]
    notes = [f"{r.name} {b}: {e}" for r in rows for b, e in r.errors.items()]
    return "\n".join(lines + ([""] + notes if notes else []))


def table_csv(rows: Sequence[ModelCost], path: str | os.PathLike | None = None) -> str:
    """The cost table as CSV text (raw counts, milliseconds); written atomically to ``path`` if given."""
    header, records = _records(rows, raw=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
    if path is not None:
        atomic_write_text(path, buffer.getvalue())
    return buffer.getvalue()

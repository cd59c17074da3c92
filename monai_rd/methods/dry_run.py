"""Dry run of one method: build it on a teacher and a student, then train one step of each stage on fabricated data.

What a grid cell would do at the start of its first epoch, in seconds on CPU, with random weights and small
images, checking that training touches exactly what the method means to train:

* every parameter a stage optimises gets a non-zero gradient within ``steps`` steps (LoRA's ``A`` gets one from
  the second step on, since ``B`` starts at zero), every other parameter none;
* every loss term is finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from monai_rd.methods.registry import build_method, needs_teacher

__all__ = ["DryRunReport", "dry_run_method", "train_steps"]


@dataclass
class DryRunReport:
    """What a dry run saw: trained parameter counts per stage and the last loss terms of each stage."""

    method: str
    stage1_trained: int
    main_trained: int
    stage1_loss: dict
    main_loss: dict


def _batch(batch_size: int, image_size: int, num_classes: int, multi_label: bool, num_data: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, 3, image_size, image_size, generator=g)
    if multi_label:
        y = (torch.rand(batch_size, num_classes, generator=g) < 0.3).float()
    else:
        y = torch.arange(batch_size) % num_classes  # every class present when the batch allows
    index = torch.randperm(num_data, generator=g)[:batch_size]
    return x, y, index


def train_steps(network: nn.Module, loss: nn.Module, params: list[nn.Parameter], batches, lr: float = 1e-2) -> dict:
    """Train ``params`` for one step per batch ``(x, y, index)``; raise unless every one of ``params`` got a
    non-zero gradient in some step and no other parameter of ``network``/``loss`` got any. -> last loss terms."""
    optimiser = torch.optim.SGD(params, lr=lr)
    wanted = {id(p) for p in params}
    named = dict(network.named_parameters())
    named.update({f"loss.{n}": p for n, p in loss.named_parameters()})
    for p in named.values():  # gradients an earlier stage left behind are not this stage's
        p.grad = None
    moved: set[int] = set()
    terms: dict = {}
    network.train()
    loss.train()
    for x, y, index in batches:
        optimiser.zero_grad(set_to_none=True)
        out = network(x)
        if getattr(loss, "needs_index", False):
            loss.index = index  # what MethodHandlers sets from the batch's "index" key
        result = loss(out, y)
        terms = {k: float(v.detach()) for k, v in result.items() if torch.is_tensor(v) and v.ndim == 0}
        bad = [k for k, v in terms.items() if not torch.isfinite(torch.tensor(v))]
        if bad:
            raise FloatingPointError(f"non-finite loss terms {bad}: {terms}")
        result["loss"].backward()
        stray = [n for n, p in named.items() if id(p) not in wanted and p.grad is not None]
        if stray:
            raise AssertionError(f"parameters outside the optimiser received gradients: {stray[:8]}")
        moved |= {id(p) for p in params if p.grad is not None and bool(p.grad.abs().sum() > 0)}
        optimiser.step()
    still = [n for n, p in named.items() if id(p) in wanted and id(p) not in moved]
    if still:
        raise AssertionError(f"{len(still)} trained parameters never received a non-zero gradient: {still[:8]}")
    return terms


def dry_run_method(
    method: str,
    teacher: nn.Module | None,
    student: nn.Module,
    num_classes: int,
    multi_label: bool = False,
    image_size: int = 32,
    batch_size: int = 4,
    num_data: int = 16,
    steps: int = 2,
    seed: int = 0,
    **options,
) -> DryRunReport:
    """Build ``method`` (see :func:`build_method`) and train ``steps`` steps of stage 1 (if any), then of the main
    stage, on random ``[batch_size, 3, image_size, image_size]`` images; see :func:`train_steps` for the checks.

    ``teacher`` is ``None`` for ``student``; ``options`` are the method's options (``method_options``). The
    method's own parameters are initialised from ``seed`` (the global RNG is left as it was), so a dry run is
    reproducible given the teacher's and student's weights.
    """
    # the method's own parts (heads, projectors, LoRA) start from ``seed``: a dry run gives the same answer each time
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        built = build_method(method, teacher if needs_teacher(method) else None, student, num_classes,
                             image_size=image_size, num_data=num_data, batch_size=batch_size,
                             multi_label=multi_label, **options)  # fmt: skip
    batches = [_batch(batch_size, image_size, num_classes, multi_label, num_data, seed + i) for i in range(steps)]
    stage1_terms: dict = {}
    if built.stage1 is not None:
        stage1_terms = train_steps(built.stage1.network, built.stage1.loss, built.stage1_parameters(), batches)
    main_params = built.parameters()
    main_terms = train_steps(built.network, built.loss, main_params, batches)
    return DryRunReport(method, len(built.stage1_parameters()), len(main_params), stage1_terms, main_terms)

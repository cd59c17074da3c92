"""DistributedDataParallel for every method: all trainable parts synchronised, never the frozen teacher."""

from __future__ import annotations

from collections.abc import Iterable

import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["distributed_rdnet", "distributed_network", "TrainableParts", "ddp_ignored_names"]


class TrainableParts(nn.Module):
    """The network plus the modules trained alongside it (a feature loss's regressors, CRD's embeddings), so one
    DDP instance synchronises them all. ``forward`` is the network's; the trainer keeps calling the loss itself,
    whose parameters' gradients DDP's reducer then averages like the network's (they are produced in the same
    backward pass). ``deployable()`` is the network's.
    """

    def __init__(self, network: nn.Module, extras: Iterable[nn.Module] = ()) -> None:
        super().__init__()
        self.network = network
        self.extras = nn.ModuleList([m for m in extras if m is not None])

    def forward(self, *args, **kwargs):
        return self.network(*args, **kwargs)

    def deployable(self) -> nn.Module:
        return self.network.deployable()


def _frozen_subtree(module: nn.Module) -> bool:
    """A trained stage-1 branch (no gradient reaches it in the main stage) or a teacher none of whose parameters
    trains (a LoRA'd or fine-tuned teacher copy does train, and a fine-tuned one updates its BatchNorm buffers)."""
    kind = type(module).__name__
    if kind == "FrozenBranch":
        return True
    return kind == "FrozenTeacher" and not any(p.requires_grad for p in module.parameters())


def ddp_ignored_names(root: nn.Module) -> list[str]:
    """Names (in ``root``) of the parameters and buffers DDP must leave alone.

    * every parameter with ``requires_grad=False`` and everything inside a frozen teacher or a frozen stage-1
      branch (:class:`~monai_rd.networks.FrozenBranch`: trained in stage 1, identical on every rank, read without
      autograd in the main stage);
    * buffers a module keeps in step across ranks itself, listed in its ``ddp_local_buffers`` (CRD's memory banks,
      updated from all ranks' embeddings), which DDP's rank-0 broadcast would otherwise overwrite.

    A parameter that is also reachable under a trainable name stays synchronised.
    """
    frozen = [prefix for prefix, m in root.named_modules() if prefix and _frozen_subtree(m)]

    def inside(name: str) -> bool:
        return any(name.startswith(prefix + ".") for prefix in frozen)

    params = list(root.named_parameters(remove_duplicate=False))
    ignored = {n for n, p in params if not p.requires_grad or inside(n)}
    kept = {id(p) for n, p in params if n not in ignored}
    ignored = {n for n, p in params if n in ignored and id(p) not in kept}
    ignored |= {n for n, _ in root.named_buffers(remove_duplicate=False) if inside(n)}
    for prefix, module in root.named_modules():
        ignored |= {f"{prefix}.{b}" if prefix else b for b in getattr(module, "ddp_local_buffers", ())}
    return sorted(ignored)


def distributed_network(network: nn.Module, *extras: nn.Module, **ddp_kwargs) -> DistributedDataParallel:
    """Wrap ``network`` (any method's network, stage 1 included) and the trainable ``extras`` (the method's loss)
    in one DDP, leaving the frozen parts (:func:`ddp_ignored_names`) out of every collective.

    Args:
        network: the method's network, already on its device (``RDNet``, ``DistillNet``, ``ReferenceNet``,
            ``StudentNet``).
        extras: modules with parameters trained with the network but called outside it (``method_def.loss``).
        ddp_kwargs: passed to :class:`torch.nn.parallel.DistributedDataParallel` (``device_ids`` ...).

    Every parameter that trains must receive a gradient in every step (``find_unused_parameters`` stays
    ``False``, since the loss's parameters are used outside ``forward``).
    """
    parts = TrainableParts(network, extras)
    if not any(p.requires_grad for p in parts.parameters()):
        raise ValueError(f"{type(network).__name__} has no trainable parameter to train under DDP.")
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(parts, ddp_ignored_names(parts))
    return DistributedDataParallel(parts, **ddp_kwargs)


def distributed_rdnet(network: nn.Module, **ddp_kwargs) -> DistributedDataParallel:
    """:func:`distributed_network` of ``network`` alone (kept for configurations written for RDNet)."""
    return distributed_network(network, **ddp_kwargs)

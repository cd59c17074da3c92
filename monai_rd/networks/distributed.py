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
    # teachers and stage-1 branches: nothing below them trains in this stage, their buffers never change
    return type(module).__name__ in ("FrozenTeacher", "FrozenBranch")


def ddp_ignored_names(root: nn.Module) -> list[str]:
    """Names (in ``root``) of the parameters and buffers DDP must leave alone.

    * every parameter with ``requires_grad=False`` (the frozen teacher, a stage-1 branch already trained);
    * the buffers of a frozen teacher or a frozen stage-1 branch (identical on every rank, never updated);
    * buffers a module keeps in step across ranks itself, listed in its ``ddp_local_buffers`` (CRD's memory banks,
      updated from all ranks' embeddings), which DDP's rank-0 broadcast would otherwise overwrite.
    """
    ignored = [n for n, p in root.named_parameters(remove_duplicate=False) if not p.requires_grad]
    for prefix, module in root.named_modules():
        dot = f"{prefix}." if prefix else ""
        if _frozen_subtree(module):
            ignored += [dot + n for n, _ in module.named_buffers()]
        for name in getattr(module, "ddp_local_buffers", ()):
            ignored.append(dot + name)
    # a parameter shared by a trainable path must stay synchronised under every one of its names
    trainable = {id(p) for p in root.parameters() if p.requires_grad}
    shared = {n for n, p in root.named_parameters(remove_duplicate=False) if id(p) in trainable}
    return sorted(set(ignored) - shared)


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


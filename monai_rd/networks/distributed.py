"""DistributedDataParallel for RD: only the trainable parts are synchronised, never the frozen teacher."""

from __future__ import annotations

from torch.nn.parallel import DistributedDataParallel

from monai_rd.networks.nets.rdnet import RDNet

__all__ = ["distributed_rdnet"]


def distributed_rdnet(network: RDNet, **ddp_kwargs) -> DistributedDataParallel:
    """Wrap ``network`` in DDP, leaving the teacher's parameters and buffers out of every collective.

    The teacher is frozen and identical on every rank, so broadcasting its BatchNorm buffers or bucketing
    its parameters would only cost bandwidth. ``g``, ``S`` and ``h`` are synchronised as usual.

    Args:
        network: the RDNet, already on its device.
        ddp_kwargs: passed to :class:`torch.nn.parallel.DistributedDataParallel` (``device_ids`` ...).
    """
    if network.teacher is not None:
        ignored = [f"teacher.{n}" for n, _ in network.teacher.named_parameters()]
        ignored += [f"teacher.{n}" for n, _ in network.teacher.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(network, ignored)
    return DistributedDataParallel(network, **ddp_kwargs)

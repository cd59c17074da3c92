"""Data loaders at device speed: worker count chosen from the machine, workers kept alive, loading overlapped.

Bundles build their training, validation and inference loaders with :func:`make_dataloader`; the feature
cache build uses :func:`default_num_workers` for its reader workers.
"""

from __future__ import annotations

import os

import torch
from monai.data import DataLoader, ThreadDataLoader

__all__ = ["MAX_AUTO_WORKERS", "available_cpus", "default_num_workers", "capped_workers", "make_dataloader"]

MAX_AUTO_WORKERS = 8  # beyond this, image decoding rarely is the bottleneck and memory per worker adds up


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and job schedulers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_num_workers(cpus: int | None = None) -> int:
    """Loader worker processes when none are given: one CPU is left to the training process, at most
    :data:`MAX_AUTO_WORKERS`; ``0`` (load in a background thread instead) on a one- or two-CPU machine, where
    a worker process would only compete with the training step for the same cores."""
    cpus = available_cpus() if cpus is None else int(cpus)
    return 0 if cpus <= 2 else min(cpus - 1, MAX_AUTO_WORKERS)


def capped_workers(requested: int, cpus: int | None = None) -> int:
    """``requested`` loader workers, but never more than the CPUs this process may use (:func:`available_cpus`).

    The bundles' default: ``"num_workers": "$monai_rd.data.capped_workers(4)"`` gives 4 workers on a machine with
    4 or more CPUs and 2 on a 2-CPU one; an explicit ``--num_workers N`` replaces the expression and is used as is.
    """
    cpus = available_cpus() if cpus is None else int(cpus)
    return max(0, min(int(requested), cpus))


def make_dataloader(
    dataset,
    batch_size: int = 1,
    shuffle: bool = False,
    drop_last: bool = False,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    **kwargs,
) -> DataLoader:
    """A MONAI loader that keeps the device fed.

    With ``num_workers > 0`` (``None``: :func:`default_num_workers`) a MONAI ``DataLoader`` whose workers
    persist across epochs (no re-fork, each keeps its own transform copies and memory maps) and prefetch 4
    batches each; with ``0`` a MONAI ``ThreadDataLoader``, which prepares the next batch in a background thread
    while the current one trains. Batches are pinned when ``device`` is a CUDA device (faster, asynchronous
    copies). Worker seeding is MONAI's (each worker's random transforms are seeded from the loader's seed).

    Args:
        dataset: the dataset (e.g. :func:`monai_rd.data.feature_cache_dataset`).
        batch_size, shuffle, drop_last: as ``torch.utils.data.DataLoader``.
        num_workers: worker processes; ``None`` chooses from the machine.
        device: where the batches go (only to decide pinning).
        kwargs: passed to the loader.
    """
    workers = default_num_workers() if num_workers is None else int(num_workers)
    if workers < 0:
        raise ValueError(f"num_workers must be >= 0 or None (automatic), got {num_workers}.")
    pin = device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()
    kwargs.setdefault("pin_memory", pin)
    if workers == 0:
        return ThreadDataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=0,
                                buffer_size=1, use_thread_workers=False, **kwargs)  # fmt: skip
    kwargs.setdefault("persistent_workers", True)
    kwargs.setdefault("prefetch_factor", 4)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=workers,
                      **kwargs)  # fmt: skip

"""Pretrain a small teacher on the synthetic *source* modality (coloured shapes), once, and reuse it.

The demo and ``benchmarks/modality_gap.py`` need a teacher that really knows something offline, where no
foundation model can be downloaded: a torchvision network trained here on
:func:`monai_rd.data.synthetic.make_source_images`, saved as a plain state dict (``torch.save``) and then loaded,
frozen, through ``build_teacher("torchvision:<arch>", weights=<file>)`` like any foundation model.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchvision

from monai_rd.data.synthetic.source import SOURCE_CLASSES, make_source_images
from monai_rd.networks.nets.students import IMAGENET_MEAN, IMAGENET_STD
from monai_rd.utils import EpochProgress, atomic_path, atomic_write_json

__all__ = ["pretrain_source_teacher", "source_accuracy", "ensure_source_teacher"]


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _test_set(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return make_source_images(max(n // 5, 60), size, seed=2000 + seed)


def source_accuracy(path: str, n: int, size: int, seed: int, arch: str = "resnet18") -> float:
    """Source-domain test accuracy of a teacher saved by :func:`pretrain_source_teacher` (same test images)."""
    xt, yt = _test_set(n, size, seed)
    model = torchvision.models.get_model(arch, num_classes=len(SOURCE_CLASSES))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    with torch.no_grad():
        return (model.eval()(_normalise(xt)).argmax(1) == yt).float().mean().item()


def pretrain_source_teacher(
    path: str,
    n: int,
    size: int,
    epochs: int,
    seed: int,
    arch: str = "resnet18",
    batch_size: int = 32,
    log: Callable[[str], None] | None = None,
) -> float:
    """Train torchvision ``arch`` on ``n`` source images of side ``size`` (AdamW, one-cycle), save its state dict
    atomically to ``path``; returns its accuracy on held-out source images (``max(n // 5, 60)``).

    ``log`` (if given) receives one line per epoch: its mean loss, the time elapsed and the time left."""
    torch.manual_seed(seed)
    x, y = make_source_images(n, size, seed=1000 + seed)
    model = torchvision.models.get_model(arch, num_classes=len(SOURCE_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    steps = epochs * -(-n // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    progress = EpochProgress(f"teacher pretraining ({arch}, {n} source images)", epochs)
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for idx in torch.randperm(n).split(batch_size):
            loss = F.cross_entropy(model(_normalise(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if log is not None:
            log(progress.line(epoch, loss=total / n))
    xt, yt = _test_set(n, size, seed)
    with torch.no_grad():
        acc = (model.eval()(_normalise(xt)).argmax(1) == yt).float().mean().item()
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return acc


def ensure_source_teacher(
    folder: str, arch: str, n: int, size: int, epochs: int, seed: int = 0, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The source teacher under ``folder``: pretrained on the first call, reused (never retrained) afterwards.
    ``log`` receives the pretraining's progress lines (:func:`pretrain_source_teacher`).

    A ``<file>.json`` next to the weights records how it was made; a file made with other settings is retrained.

    Returns:
        ``{"weights", "arch", "source_accuracy", "pretrained_now", "seconds", ...settings}``.
    """
    weights = os.path.join(os.path.abspath(folder), f"source_teacher_{arch}.pt")
    meta_file = weights + ".json"
    settings = {"arch": arch, "images": n, "size": size, "epochs": epochs, "seed": seed}
    if os.path.isfile(weights) and os.path.isfile(meta_file):
        with open(meta_file) as f:
            meta = json.load(f)
        if meta.get("settings") == settings:
            return {**meta, "weights": weights, "pretrained_now": False, "seconds": 0.0}
    start = time.time()
    acc = pretrain_source_teacher(weights, n, size, epochs, seed, arch, log=log)
    meta = {"settings": settings, "source_accuracy": acc, "pretrain_seconds": round(time.time() - start, 1),
            "source_classes": list(SOURCE_CLASSES)}  # fmt: skip
    atomic_write_json(meta_file, meta)
    return {**meta, "weights": weights, "pretrained_now": True, "seconds": meta["pretrain_seconds"]}

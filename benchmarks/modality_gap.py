"""Synthetic modality-gap benchmark (not a test): RD vs student-only vs Hinton KD vs direct reprogramming.

A teacher (torchvision ResNet-18, random init) is pretrained in-process on a *source* domain of colourful
shapes on smooth colour backgrounds (6 shape classes, many images), saved as a local weights file and then
loaded, frozen, through :func:`monai_rd.networks.build_teacher` like any foundation model. The *target* task is
in another modality: grey ultrasound-like images (Rayleigh speckle, depth attenuation) with a low-contrast
lesion that is absent / a smooth oval / a spiculated blob (3 classes), with a small training set. Each method
trains the same student architecture (``resnet18`` from :func:`build_student`, random init) on the same
training images with the same optimiser, epochs and batch size; the deployed student is scored on a held-out
test set at the last epoch (no model selection on the test set). Methods, built from the library's parts:

- ``student``: ``StudentClassifier``, cross-entropy only.
- ``kd``: Hinton KD (``KDLoss``, tau=4) from a *linearly probed* teacher (logistic regression ``h_T`` on the
  frozen teacher's pooled features, fitted on the training set), loss ``CE + KD``.
- ``direct_reprogramming``: stage 1 trains a ``Reprogrammer`` ``g`` and a linear head ``h`` on the frozen
  teacher (CE only); stage 2 trains the student with ``CE + KD`` from the fixed reprogrammed teacher.
- ``rd``: ``RDNet`` + ``RDLoss`` (co-training of ``g``, ``S`` and the shared ``h``); weights
  ``ce_teacher = ce_student = 1``, ``kd`` and ``cka`` decreasing linearly from 1 to 0 per iteration, as the paper.

Also reported, as references (not deployable students): the linear-probe teacher's and the directly
reprogrammed teacher's test accuracy. Example (the run recorded in docs/protocol.md)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/modality_gap.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.data.synthetic.target import TARGET_CLASSES, make_target_images
from monai_rd.experiments.source_teacher import pretrain_source_teacher, source_accuracy
from monai_rd.losses import KDLoss, RDLoss
from monai_rd.networks import RDNet, StudentClassifier, build_teacher
from monai_rd.networks.blocks.reprogrammer import Reprogrammer


# ----------------------------------------------------------------------------------------------- data
# the target images live in the package (the task families use them too); the old names stay for the scripts
make_target = make_target_images


# ------------------------------------------------------------------------------------------- methods
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (torch.cat([model(b) for b in x.split(128)]).argmax(1) == y).float().mean().item()


def _teacher_features(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([teacher(b) for b in x.split(128)])


def _batches(n: int, batch_size: int, gen: torch.Generator):
    return torch.randperm(n, generator=gen).split(batch_size)


def train_student(x, y, cfg, seed, teacher_logits=None) -> StudentClassifier:
    """CE (+ Hinton KD to fixed ``teacher_logits`` ``[N, C]`` when given) on the student."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    student = StudentClassifier(cfg.student, num_classes=len(TARGET_CLASSES))
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.01)
    kd = KDLoss(temperature=cfg.temperature)
    for _ in range(cfg.epochs):
        student.train()
        for idx in _batches(len(y), cfg.batch_size, gen):
            logits = student(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            if teacher_logits is not None:
                loss = loss + kd(logits, teacher_logits[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return student


def linear_probe(feats: torch.Tensor, y: torch.Tensor, steps: int = 300) -> nn.Linear:
    """Logistic regression on frozen teacher features (full batch, Adam, standardised inside the layer)."""
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    with torch.random.fork_rng():  # the probe's start does not depend on what ran before it in this process
        torch.manual_seed(0)
        head = nn.Linear(feats.shape[1], len(TARGET_CLASSES))
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    z = (feats - mu) / sd
    for _ in range(steps):
        loss = F.cross_entropy(head(z), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # fold the standardisation into the layer
        head.weight.div_(sd)
        head.bias.sub_(head.weight @ mu)
    return head


def direct_reprogram(feats: torch.Tensor, y: torch.Tensor, cfg, seed: int) -> nn.Module:
    """Stage 1 of direct reprogramming: ``h(g(T(x)))`` trained with CE on frozen teacher features."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    d_s = StudentClassifier(cfg.student, num_classes=len(TARGET_CLASSES)).feature_dim
    model = nn.Sequential(Reprogrammer(tuple(feats.shape[1:]), d_s, num_blocks=2), nn.Linear(d_s, len(TARGET_CLASSES)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    for _ in range(cfg.epochs):
        model.train()
        for idx in _batches(len(y), cfg.batch_size, gen):
            loss = F.cross_entropy(model(feats[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def reprogrammer_options(spec: str) -> dict:
    """``--rd_reprogrammers`` entry -> RDNet options: ``default``, ``full`` (the paper's width), ``budget:<fraction
    of the student's parameters>`` or ``width:<p>``."""
    if spec == "default":
        return {}
    if spec == "full":
        return {"reprogrammer_budget": None}
    kind, _, value = spec.partition(":")
    if kind == "budget":
        return {"reprogrammer_budget": float(value)}
    if kind == "width":
        return {"reprogrammer_width": int(value)}
    raise ValueError(f"--rd_reprogrammers entry {spec!r}: use default, full, budget:<fraction> or width:<p>.")


def train_rd(x, y, feats, teacher, cfg, seed, reprogrammer: str = "default") -> StudentClassifier:
    """RD: ``RDNet`` + ``RDLoss``; kd and cka weights 1 -> 0 linearly over all iterations."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = RDNet(teacher, StudentClassifier(cfg.student, num_classes=len(TARGET_CLASSES)), num_blocks=2,
                **reprogrammer_options(reprogrammer))  # fmt: skip
    loss_fn = RDLoss(temperature=cfg.temperature, gather_distributed=False)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.01)
    iters_per_epoch = len(y) // cfg.batch_size + (len(y) % cfg.batch_size > 0)
    total, it = cfg.epochs * iters_per_epoch, 0
    for _ in range(cfg.epochs):
        net.train()
        for idx in _batches(len(y), cfg.batch_size, gen):
            frac = it / max(total - 1, 1)
            loss_fn.weights["kd"] = loss_fn.weights["cka"] = 1.0 - frac
            out = loss_fn(net(x[idx], teacher_features=feats[idx]), y[idx])
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            it += 1
    return net.deployable()


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--source_images", type=int, default=3000)
    p.add_argument("--source_epochs", type=int, default=8)
    p.add_argument("--train_per_class", type=int, default=16)
    p.add_argument("--test_per_class", type=int, default=100)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--student", default="resnet18")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--rd_reprogrammers",
        nargs="+",
        default=["default"],
        help="RD variants of g: default, full, budget:<fraction>, width:<p> (one RD row each)",
    )
    p.add_argument("--only_rd", action="store_true", help="skip the other methods (for comparing g variants)")
    p.add_argument("--workdir", default=None, help="where the teacher weights go (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the per-seed results here")
    p.add_argument(
        "--teacher_weights",
        default=None,
        help="a source teacher saved by an earlier run (skips pretraining; re-measures its accuracy)",
    )
    cfg = p.parse_args(argv)
    torch.set_num_threads(cfg.threads)
    workdir = cfg.workdir or tempfile.mkdtemp(prefix="modality_gap_")
    os.makedirs(workdir, exist_ok=True)
    weights = cfg.teacher_weights or os.path.join(workdir, "source_teacher_resnet18.pt")
    t0 = time.time()
    if cfg.teacher_weights:
        source_acc = source_accuracy(weights, cfg.source_images, cfg.size, seed=0)
    else:
        source_acc = pretrain_source_teacher(weights, cfg.source_images, cfg.size, cfg.source_epochs, seed=0)
    how = "loaded" if cfg.teacher_weights else "pretrained on the source domain"
    print(
        f"teacher {how}: source test accuracy {source_acc:.3f} ({time.time() - t0:.0f} s), weights {weights}",
        flush=True,
    )
    teacher = build_teacher("torchvision:resnet18", weights=weights)
    xte, yte = make_target(cfg.test_per_class, cfg.size, seed=99)
    results: dict[str, list[float]] = {}
    for seed in cfg.seeds:
        x, y = make_target(cfg.train_per_class, cfg.size, seed=10 + seed)
        feats, feats_te = _teacher_features(teacher, x), _teacher_features(teacher, xte)
        probe = linear_probe(feats, y)
        reprog = direct_reprogram(feats, y, cfg, seed)
        with torch.no_grad():
            row = {
                "teacher_linear_probe (ref.)": (probe(feats_te).argmax(1) == yte).float().mean().item(),
                "teacher_direct_reprog (ref.)": (reprog(feats_te).argmax(1) == yte).float().mean().item(),
            }
            probe_logits, reprog_logits = probe(feats), reprog(feats)
        if not cfg.only_rd:
            row["student"] = _accuracy(train_student(x, y, cfg, seed), xte, yte)
            row["kd (linear-probe teacher)"] = _accuracy(train_student(x, y, cfg, seed, probe_logits), xte, yte)
            row["direct_reprogramming + kd"] = _accuracy(train_student(x, y, cfg, seed, reprog_logits), xte, yte)
        for spec in cfg.rd_reprogrammers:
            name = "rd" if cfg.rd_reprogrammers == ["default"] else f"rd (g {spec})"
            row[name] = _accuracy(train_rd(x, y, feats, teacher, cfg, seed, spec), xte, yte)
        for k, v in row.items():
            results.setdefault(k, []).append(v)
        print(
            f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()),
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )
    print(f"\n| method | test accuracy (%), mean ± std over seeds {cfg.seeds} |\n|---|---|")
    for k, v in results.items():
        a = 100 * np.asarray(v)
        print(f"| {k} | {a.mean():.1f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.1f} |")
    print(f"\ntotal {time.time() - t0:.0f} s; source-domain teacher accuracy {100 * source_acc:.1f}%")
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump({"config": vars(cfg), "source_accuracy": source_acc, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

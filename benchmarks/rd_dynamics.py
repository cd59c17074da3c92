"""Why RD can lose to the student trained alone at small budgets, and which setting fixes it (not a test).

Uses the synthetic modality-gap task of ``benchmarks/modality_gap.py`` (a ResNet-18 teacher pretrained on
colour shapes, a grey ultrasound-like 3-class target) and trains, on the same images, seeds, optimiser and
batches: the student alone (CE), Hinton KD from a linearly probed teacher, direct reprogramming (``h(g(T(x)))``
trained first, then KD from it) and RD (``RDNet`` + ``RDLoss``) in each setting of :data:`RD_SETTINGS` (loss-weight
schedule of :data:`monai_rd.losses.RD_SCHEDULES`, whether the teacher branch trains the shared head, whether
KD/CKA are detached from the teacher branch). Teacher features are computed once (the teacher is frozen), so a
run costs about what training the student costs.

For every RD run it records per iteration: each unweighted loss term and its weight, the batch accuracy of
the teacher branch ``h(g(T(x)))`` and of the student, and the batch CKA; ``--curves DIR`` plots them.
The deployed student is scored on held-out test images at the last epoch (no selection on the test set).

Example (the runs recorded in docs/methods.md)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 60 \\
        --train_per_class 16 --workdir /tmp/gap --json /tmp/gap/rd_dyn_16.json --curves /tmp/gap/curves
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from monai_rd.handlers import LossWeightSchedule
from monai_rd.losses import RDLoss
from monai_rd.methods import Method, Stage
from monai_rd.networks import RDNet, StudentClassifier, build_teacher

_spec = importlib.util.spec_from_file_location(
    "modality_gap", os.path.join(os.path.dirname(__file__), "modality_gap.py")
)
gap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gap)  # type: ignore[union-attr]

CONTRAST = {"default": (0.35, 0.6), "subtle": (0.7, 0.85)}


def make_target(n_per_class: int, size: int, seed: int, contrast: str):
    """The modality-gap target with the lesion contrast named by ``contrast`` (see :data:`CONTRAST`)."""
    return gap.make_target(n_per_class, size, seed, contrast=CONTRAST[contrast])


class _Engine:
    """The few engine attributes :class:`LossWeightSchedule` reads (iteration, epoch, lengths)."""

    def __init__(self, max_epochs: int, epoch_length: int) -> None:
        self.state = argparse.Namespace(iteration=0, epoch=0, max_epochs=max_epochs, epoch_length=epoch_length)


class RDSetting(NamedTuple):
    """One RD configuration of the benchmark (see :data:`RD_SETTINGS`)."""

    schedule: str  # a name of monai_rd.losses.RD_SCHEDULES
    teacher_trains_head: bool
    detach_teacher: bool
    weight_overrides: dict
    teacher_warmup: bool  # stage 1 trains h(g(T(x))) alone first (the bundles' teacher_warmup)
    reprogrammer_lr_scale: float = 1.0  # g's learning rate = this x the student's


#: RD settings compared. ``default`` is the bundles' default without its distillation gate (this benchmark has no
#: validation split to drive it; the gate became the bundles' default after these runs); ``default+teacher_warmup`` adds the bundles'
#: ``teacher_warmup`` (stage 1 trains ``h(g(T(x)))`` alone first); ``paper`` the paper's co-training from the first
#: step; the ``cotrain_only`` pair isolates the shared head (no KD, no CKA: the branches meet only in ``h``);
#: ``+g_lr0.1`` trains ``g`` at a tenth of the student's learning rate (the bundles' ``reprogrammer_lr_scale``);
#: ``paper+teacher_warmup+hold_kd`` holds the KD weight at 1 from the first co-training step, like the KD baseline.
RD_SETTINGS = {
    "paper": RDSetting("paper", True, False, {}, False),
    "warmup": RDSetting("warmup", True, False, {}, False),
    "default": RDSetting("warmup", False, False, {}, False),
    "default+teacher_warmup": RDSetting("warmup", False, False, {}, True),
    "paper+head_from_student": RDSetting("paper", False, False, {}, False),
    "paper+teacher_warmup": RDSetting("paper", False, False, {}, True),
    "warmup+detach": RDSetting("warmup", True, True, {}, False),
    "cotrain_only": RDSetting("paper", True, False, {"kd": 0.0, "cka": 0.0}, False),
    "cotrain_only+head_from_student": RDSetting("paper", False, False, {"kd": 0.0, "cka": 0.0}, False),
    "default+g_lr0.1": RDSetting("warmup", False, False, {}, False, 0.1),
    "default+teacher_warmup+g_lr0.1": RDSetting("warmup", False, False, {}, True, 0.1),
    "warmup+teacher_warmup+g_lr0.1": RDSetting("warmup", True, False, {}, True, 0.1),
    "paper+teacher_warmup+hold_kd": RDSetting("paper", False, False, {"kd": 1.0}, True),
}


def warm_up_teacher_branch(method: Method, feats, y, cfg, seed: int) -> list[float]:
    """The bundles' stage 1 of RD (``teacher_warmup``): ``h(g(T(x)))`` alone, CE, ``cfg.warmup_epochs`` epochs (default
    ``cfg.epoch_budget``, like the bundles' ``stage1_epochs``), the bundles' optimiser groups
    (``method.stage1_param_groups``); returns the per-iteration training CE."""
    branch = method.stage1_network
    gen = torch.Generator().manual_seed(seed + 1000)
    opt = torch.optim.AdamW(method.stage1_param_groups(cfg.lr), lr=cfg.lr, weight_decay=0.01)
    ce = []
    branch.train()
    for _ in range(cfg.warmup_epochs or cfg.epoch_budget):
        for idx in gap._batches(len(y), cfg.batch_size, gen):
            loss = F.cross_entropy(branch(None, teacher_features=feats[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            ce.append(float(loss.detach()))
    return ce


def train_rd(x, y, feats, teacher, cfg, seed, setting: str):
    """RD in one of :data:`RD_SETTINGS`; returns the deployed student and per-iteration records."""
    schedule, teacher_trains_head, detach, overrides, warmup, g_lr_scale = RD_SETTINGS[setting]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = RDNet(
        teacher,
        StudentClassifier(cfg.student, num_classes=len(gap.TARGET_CLASSES)),
        num_blocks=2,
        teacher_trains_head=teacher_trains_head,
    )
    loss_fn = RDLoss(
        temperature=cfg.temperature, gather_distributed=False, detach_teacher=detach, cka_memory=cfg.cka_memory
    )
    # the optimiser groups of the bundles (g at g_lr_scale x lr), from the package's own Method
    method = Method(
        "rd",
        net,
        loss_fn,
        {},
        stage1=Stage(net.teacher_branch(), loss_fn, {}, frozen=False),
        lr_scales=[(net.reprogrammer, g_lr_scale)],
    )
    warmup_ce = warm_up_teacher_branch(method, feats, y, cfg, seed) if warmup else []
    opt = torch.optim.AdamW(method.param_groups(cfg.lr), lr=cfg.lr, weight_decay=0.01)
    epoch_length = epoch_length_of(y, cfg)
    engine = _Engine(cfg.epoch_budget, epoch_length)
    sched = LossWeightSchedule(overrides or None, schedule=schedule, loss_function=loss_fn)
    records = []
    for epoch in range(1, cfg.epoch_budget + 1):
        engine.state.epoch = epoch
        net.train()
        for idx in gap._batches(len(y), cfg.batch_size, gen):
            engine.state.iteration += 1
            sched(engine)
            outputs = net(x[idx], teacher_features=feats[idx])
            out = loss_fn(outputs, y[idx])
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            with torch.no_grad():
                rec = {k: float(out[k]) for k in ("ce_teacher", "ce_student", "kd", "cka", "cka_value")}
                rec.update({f"w_{k}": float(v) for k, v in loss_fn.weights.items()})
                rec["acc_teacher"] = (outputs["z_T"].argmax(1) == y[idx]).float().mean().item()
                rec["acc_student"] = (outputs["z_S"].argmax(1) == y[idx]).float().mean().item()
            records.append(rec)
    return net.deployable(), records, warmup_ce


def epoch_length_of(y, cfg) -> int:
    return len(y) // cfg.batch_size + (len(y) % cfg.batch_size > 0)


def _stats(values) -> str:
    a = 100 * np.asarray(values)
    return f"{a.mean():.1f} ± {a.std(ddof=1):.1f}" if len(a) > 1 else f"{a.mean():.1f} (n=1)"


def plot_curves(curves: dict, path: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        ("ce_teacher", "teacher-branch CE"),
        ("ce_student", "student CE"),
        ("acc_teacher", "teacher-branch batch acc"),
        ("acc_student", "student batch acc"),
        ("cka_value", "batch CKA"),
        ("kd", "KD term (unweighted)"),
        ("w_kd", "KD / CKA weight (schedule)"),
        ("cka", "CKA term 1 - CKA (unweighted)"),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(17, 6.5))
    for ax, (key, label) in zip(axes.ravel(), keys):
        for name, records in curves.items():
            values = np.array([r[key] for r in records])
            k = max(1, len(values) // 40)  # moving average over ~2.5 % of training for readability
            smooth = np.convolve(values, np.ones(k) / k, mode="valid")
            ax.plot(np.arange(len(smooth)) + k // 2, smooth, label=name)
        if key == "ce_teacher" or key == "ce_student":
            ax.axhline(np.log(len(gap.TARGET_CLASSES)), color="grey", ls=":", lw=1)
        ax.set_title(label)
        ax.set_xlabel("iteration")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_seeds(cells: dict, path: str, methods=("student", "kd", "rd default", "rd default+teacher_warmup")) -> str:
    """Every seed's test accuracy per cell and method (dots), with the mean (bar) and one std (whisker).

    ``cells``: cell -> method -> per-seed accuracies (the ``five_seeds`` entry of
    ``benchmarks/results/rd_dynamics_5_seeds.json``); methods a cell did not run are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cells), figsize=(3.1 * len(cells), 4.2), sharey=True)
    for ax, (cell, row) in zip(np.atleast_1d(axes), cells.items()):
        for i, name in enumerate(methods):
            if name not in row:
                continue
            values = 100 * np.asarray(row[name], float)
            ax.bar(i, values.mean(), color=f"C{i}", alpha=0.35, yerr=values.std(ddof=1), capsize=3)
            ax.scatter(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values, color=f"C{i}", s=14)
        ax.set_xticks(
            range(len(methods)),
            [m.replace("rd default+teacher_warmup", "rd + warm-up") for m in methods],
            rotation=35,
            ha="right",
            fontsize=8,
        )
        ax.set_title(cell, fontsize=9)
        ax.set_ylim(35, 70)
        ax.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("test accuracy (%), last epoch")
    fig.suptitle("synthetic modality gap: every seed (dots), mean and one std (bars)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, nargs="+", default=[15, 60], help="training budgets (epochs)")
    p.add_argument("--train_per_class", type=int, nargs="+", default=[10])
    p.add_argument("--contrast", choices=sorted(CONTRAST), default="default")
    p.add_argument(
        "--rd",
        nargs="+",
        default=["paper", "warmup", "default"],
        choices=sorted(RD_SETTINGS),
        help="RD settings to train (RD_SETTINGS)",
    )
    p.add_argument("--no_direct", action="store_true", help="skip direct reprogramming (+ KD from it)")
    p.add_argument(
        "--no_baselines",
        action="store_true",
        help="skip the student alone and KD (e.g. more RD settings on seeds already measured: every run "
        "of a seed trains on the same images, batches and initialisation)",
    )
    p.add_argument(
        "--warmup_epochs",
        type=int,
        default=None,
        help="epochs of the teacher-branch warm-up (the bundles' stage1_epochs); default: the budget",
    )
    p.add_argument("--cka_memory", type=int, default=0, help="RDLoss cka_memory (recent samples in CKA)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--source_images", type=int, default=3000)
    p.add_argument("--source_epochs", type=int, default=8)
    p.add_argument("--test_per_class", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--student", default="resnet18")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--teacher_weights", default=None, help="a source teacher saved by modality_gap.py/this script")
    p.add_argument("--workdir", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--curves", default=None, help="folder for per-iteration curve plots (PNG)")
    p.add_argument(
        "--plot_seeds",
        nargs=2,
        metavar=("RESULTS_JSON", "PNG"),
        default=None,
        help="only draw the per-seed figure (plot_seeds) of a results file's 'five_seeds' entry, then exit",
    )
    cfg = p.parse_args(argv)
    torch.set_num_threads(cfg.threads)
    if cfg.plot_seeds:
        with open(cfg.plot_seeds[0]) as f:
            print("figure:", plot_seeds(json.load(f)["five_seeds"], cfg.plot_seeds[1]))
        return 0
    workdir = cfg.workdir or tempfile.mkdtemp(prefix="rd_dynamics_")
    os.makedirs(workdir, exist_ok=True)
    weights = cfg.teacher_weights or os.path.join(workdir, "source_teacher_resnet18.pt")
    t0 = time.time()
    if not os.path.isfile(weights):
        acc = gap.pretrain_source_teacher(weights, cfg.source_images, cfg.size, cfg.source_epochs, seed=0)
        print(f"teacher pretrained on the source domain: {acc:.3f} ({time.time() - t0:.0f} s) -> {weights}", flush=True)
    teacher = build_teacher("torchvision:resnet18", weights=weights)
    xte, yte = make_target(cfg.test_per_class, cfg.size, seed=99, contrast=cfg.contrast)
    feats_te = gap._teacher_features(teacher, xte)
    results: dict[str, dict[str, list[float]]] = {}
    budgets = list(cfg.epochs)
    for n in cfg.train_per_class:
        for epochs in budgets:
            cfg.epoch_budget = epochs
            setting = f"{n}/class, {epochs} ep"
            curves = {}
            for seed in cfg.seeds:
                x, y = make_target(n, cfg.size, seed=10 + seed, contrast=cfg.contrast)
                feats = gap._teacher_features(teacher, x)
                cfg.epochs = epochs  # gap.train_student reads cfg.epochs
                probe = gap.linear_probe(feats, y)
                with torch.no_grad():
                    row = {"teacher linear probe (ref.)": (probe(feats_te).argmax(1) == yte).float().mean().item()}
                    probe_logits = probe(feats)
                if not cfg.no_baselines:
                    row["student"] = gap._accuracy(gap.train_student(x, y, cfg, seed), xte, yte)
                    row["kd"] = gap._accuracy(gap.train_student(x, y, cfg, seed, probe_logits), xte, yte)
                if not cfg.no_direct:  # stage 1: h(g(T(x))) alone; stage 2: KD from it
                    reprog = gap.direct_reprogram(feats, y, cfg, seed)
                    with torch.no_grad():
                        reprog_logits = reprog(feats)
                    row["direct reprogramming"] = gap._accuracy(gap.train_student(x, y, cfg, seed, reprog_logits),
                                                                xte, yte)  # fmt: skip
                for rd_setting in cfg.rd:
                    name = f"rd {rd_setting}"
                    student, records, warmup_ce = train_rd(x, y, feats, teacher, cfg, seed, rd_setting)
                    row[name] = gap._accuracy(student, xte, yte)
                    if seed == cfg.seeds[0]:
                        curves[name] = records
                    first = records[: max(1, len(records) // 5)]
                    row[name + " | teacher CE, first 20%"] = float(np.mean([r["ce_teacher"] for r in first]))
                    last = records[-len(first) :]
                    row[name + " | teacher acc, last 20%"] = float(np.mean([r["acc_teacher"] for r in last]))
                    if warmup_ce:  # the branch's training CE over the warm-up's third and last epochs
                        length = epoch_length_of(y, cfg)
                        if len(warmup_ce) >= 3 * length:  # a warm-up of under three epochs has no third epoch
                            row[name + " | warm-up CE, epoch 3"] = float(np.mean(warmup_ce[2 * length : 3 * length]))
                        row[name + " | warm-up CE, last epoch"] = float(np.mean(warmup_ce[-length:]))
                for k, v in row.items():
                    results.setdefault(setting, {}).setdefault(k, []).append(v)
                print(
                    f"[{setting}] seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if "|" not in k),
                    f"({time.time() - t0:.0f} s)",
                    flush=True,
                )
            if cfg.curves:
                os.makedirs(cfg.curves, exist_ok=True)
                path = os.path.join(cfg.curves, f"rd_dynamics_{cfg.contrast}_{n}pc_{epochs}ep.png")
                warm = f", teacher warm-up {cfg.warmup_epochs} ep" if cfg.warmup_epochs else ""
                plot_curves(
                    curves, path, f"{cfg.contrast} target, {setting}, seed {cfg.seeds[0]}, batch {cfg.batch_size}{warm}"
                )
                print("curves:", path)
    print(
        f"\ntest accuracy (%), mean ± std over seeds {cfg.seeds}; target '{cfg.contrast}', batch {cfg.batch_size}, "
        f"lr {cfg.lr}"
    )
    names = [k for k in next(iter(results.values())) if "|" not in k]
    print("| setting | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for setting, row in results.items():
        print(f"| {setting} | " + " | ".join(_stats(row[k]) for k in names) + " |")
    print(f"\ntotal {time.time() - t0:.0f} s")
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump({"config": {**vars(cfg), "epochs": budgets}, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

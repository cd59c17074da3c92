"""``METHODS``: every method of the comparison, built by name into network + loss (+ stage 1).

A bundle builds its method with::

    "method_def": "$monai_rd.methods.build_method(@method, teacher=@teacher_def, student=@student_def, ...)"

and trains ``method_def.network`` with ``method_def.loss`` on ``method_def.parameters()``; when
``method_def.stage1`` is set, its network is trained first with its own loss (a teacher-side classifier that the
distillation stage then reads, frozen).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from monai_rd.handlers.loss_weight_schedule import WeightSchedule
from monai_rd.losses.baselines import build_kd_loss
from monai_rd.losses.rd import RDLoss, rd_default_weights
from monai_rd.networks.blocks.reprogrammer import budget_width
from monai_rd.networks.nets.rdnet import REPROGRAMMER_BUDGET, RDNet
from monai_rd.networks.nets.volume_teachers import check_teacher_dims
from monai_rd.utils.registry import Registry
from monai_rd.networks.blocks.adapters import lora_teacher, vpt_teacher
from monai_rd.losses.method_loss import MethodLoss
from monai_rd.networks.nets.method_nets import (
    DistillNet,
    ReferenceNet,
    StudentNet,
    TeacherClassifier,
    TunedTeacher,
    default_feature_layer,
    default_feature_layers,
    probe_forward,
)

__all__ = [
    "METHODS",
    "Method",
    "Stage",
    "build_method",
    "build_deployable",
    "method_options",
    "DEPLOYABLES",
    "needs_teacher",
    "TEACHERLESS_METHODS",
    "FEATURE_KD_WEIGHTS",
]

METHODS = Registry("method")

#: methods that never build a teacher (a bundle disables its teacher definition for them)
TEACHERLESS_METHODS = frozenset({"student"})

#: default weight of each feature-distillation term (RepDistiller's ``-b`` defaults; AT's beta=1000 and MGD's
#: alpha are already inside the losses), added to the student's CE with weight 1.
FEATURE_KD_WEIGHTS = {"hint": 100.0, "at": 1.0, "vid": 1.0, "crd": 0.8, "semckd": 400.0, "mgd": 1.0, "norm": 1.0}


@dataclass
class Stage:
    """A network trained on its own before the main stage, with its loss and the weights schedule of that loss.

    ``frozen``: the main stage reads it without training it (a teacher probe, ``g + h`` of direct reprogramming);
    ``False``: the main stage trains its parameters on (RD's teacher-branch warm-up: ``g`` and ``h`` co-train).
    """

    network: nn.Module
    loss: nn.Module
    loss_weights: dict
    frozen: bool = True


@dataclass
class Method:
    """What a bundle trains for one method.

    Attributes:
        name: the method id.
        network: trained by the main trainer; returns the RD dict and has ``deployable()`` (what ``model.pt`` is).
        loss: returns ``{"loss": total, <term>: value}`` with a ``weights`` dict.
        loss_weights: the schedule given to :class:`monai_rd.handlers.LossWeightSchedule` in the main stage.
        stage1: trained before the main stage (teacher probe, ``g + h``, LoRA/VPT + head), or ``None``.
        sample_indices: the loss reads the dataset index of each sample (``index`` batch key; CRD).
        lr_scales: ``(module, scale)`` pairs: the parameters of ``module`` train at ``scale`` times the bundle's
            learning rate, in both stages (RD's ``reprogrammer_lr_scale``); see :meth:`param_groups`.
    """

    name: str
    network: nn.Module
    loss: nn.Module
    loss_weights: dict
    stage1: Stage | None = None
    sample_indices: bool = False
    info: dict = field(default_factory=dict)
    lr_scales: list[tuple[nn.Module, float]] = field(default_factory=list)

    @staticmethod
    def _trainable(*modules: nn.Module) -> list[nn.Parameter]:
        seen: set[int] = set()
        out = []
        for module in modules:
            for p in module.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the main stage: the network's and the loss's own, less those of a frozen stage 1
        (its branch is read, not trained, during the main stage)."""
        frozen = {id(p) for p in self.stage1_parameters()} if self.stage1 is not None and self.stage1.frozen else set()
        return [p for p in self._trainable(self.network, self.loss) if id(p) not in frozen]

    @property
    def stage1_network(self) -> nn.Module | None:
        return None if self.stage1 is None else self.stage1.network

    @property
    def stage1_loss(self) -> nn.Module | None:
        return None if self.stage1 is None else self.stage1.loss

    @property
    def stage1_loss_weights(self) -> dict:
        return {} if self.stage1 is None else self.stage1.loss_weights

    def stage1_parameters(self) -> list[nn.Parameter]:
        return [] if self.stage1 is None else self._trainable(self.stage1.network, self.stage1.loss)

    def param_groups(self, lr: float) -> list[dict]:
        """The main stage's optimizer parameter groups: :meth:`parameters` at ``lr``, less those of each ``lr_scales``
        module, which get a group at ``scale * lr`` of their own. Without scales it is the single group
        ``[{"params": parameters(), "lr": lr}]``, so checkpoints of earlier runs resume unchanged."""
        return self._groups(self.parameters(), lr)

    def stage1_param_groups(self, lr: float) -> list[dict]:
        """:meth:`param_groups` for :meth:`stage1_parameters` (the same modules keep the same scales)."""
        return self._groups(self.stage1_parameters(), lr)

    def _groups(self, params: list[nn.Parameter], lr: float) -> list[dict]:
        groups, taken = [], set()
        for module, scale in self.lr_scales:
            if scale == 1.0:
                continue
            ids = {id(p) for p in module.parameters()} - taken
            scaled = [p for p in params if id(p) in ids]
            taken |= ids
            if scaled:
                groups.append({"params": scaled, "lr": lr * scale})
        rest = [p for p in params if id(p) not in taken]
        return ([{"params": rest, "lr": lr}] if rest else []) + groups

    def to(self, device) -> Method:
        for m in (self.network, self.loss) + (() if self.stage1 is None else (self.stage1.network, self.stage1.loss)):
            m.to(device)
        return self


def needs_teacher(name: str) -> bool:
    """Whether method ``name`` uses the teacher network (``student`` does not; a bundle then never builds one)."""
    if name not in METHODS:
        raise KeyError(f"Unknown method {name!r}. Available: {', '.join(METHODS.names())}.")
    return name not in TEACHERLESS_METHODS


def build_method(
    name: str,
    teacher: nn.Module | None,
    student: nn.Module,
    num_classes: int,
    image_size: int = 224,
    num_data: int | None = None,
    train_labels: Sequence | None = None,
    batch_size: int | None = None,
    temperature: float = 4.0,
    multi_label: bool = False,
    detach_teacher: bool = False,
    loss_weights: Mapping | None = None,
    reprogrammer_blocks: int = 2,
    teacher_feature_shape: tuple[int, ...] | None = None,
    teacher_trains_head: bool = True,
    teacher_warmup: bool = False,
    reprogrammer_lr_scale: float = 1.0,
    reprogrammer_budget: float | None = REPROGRAMMER_BUDGET,
    **options: Any,
) -> Method:
    """Build method ``name`` (see :data:`METHODS`) from the bundle's teacher and student.

    Args:
        teacher: the frozen teacher (``None`` for ``student``, or with a feature cache).
        student: the deployable :class:`monai_rd.networks.StudentClassifier`.
        num_classes: ``C``.
        image_size: side of the training images (feature shapes of tapped layers are probed at it).
        num_data: training-set size (CRD memory banks).
        train_labels: the training samples' labels, in dataset-index order (CRD draws negatives from other
            classes when each is one class index; multi-label or missing: from all other samples).
        batch_size: training batch size (SemCKD; the loader must drop the last incomplete batch).
        temperature: KD temperature. multi_label: BCE/sigmoid instead of CE/softmax.
        detach_teacher, loss_weights, reprogrammer_blocks, teacher_trains_head, teacher_warmup: RD's options
            (``loss_weights`` is RD's schedule; ``teacher_trains_head``: see :class:`monai_rd.networks.RDNet`;
            ``teacher_warmup``: train RD's teacher branch ``h(g(T(x)))`` alone, with CE, as a stage 1 before
            co-training). Ignored by the other methods.
        reprogrammer_lr_scale: RD's ``g`` trains at this times the learning rate (:meth:`Method.param_groups`);
            ignored by the other methods.
        reprogrammer_budget: ``g`` of ``rd`` and ``direct_reprogramming`` holds at most this fraction of the
            student's parameters (a bottleneck, :func:`monai_rd.networks.blocks.budget_width`); ``None``: the
            paper's full-width ``g``. Ignored by the other methods.
        teacher_feature_shape: cached teacher feature shape when ``teacher`` is None (feature cache).
        options: method options (``method_options`` in the bundle), e.g. ``kd_weight``, ``teacher_layers``.
    """
    if name not in METHODS:
        raise KeyError(f"Unknown method {name!r}. Available: {', '.join(METHODS.names())}.")
    check_teacher_dims(teacher, getattr(student, "spatial_dims", 2))  # a 2D teacher on volumes: refused by name
    common = dict(
        teacher=teacher,
        student=student,
        num_classes=num_classes,
        image_size=image_size,
        num_data=num_data,
        train_labels=train_labels,
        batch_size=batch_size,
        temperature=temperature,
        multi_label=multi_label,
        detach_teacher=detach_teacher,
        loss_weights=dict(loss_weights) if loss_weights is not None else None,
        reprogrammer_blocks=reprogrammer_blocks,
        teacher_feature_shape=tuple(teacher_feature_shape) if teacher_feature_shape is not None else None,
        teacher_trains_head=teacher_trains_head,
        teacher_warmup=teacher_warmup,
        reprogrammer_lr_scale=reprogrammer_lr_scale,
        reprogrammer_budget=reprogrammer_budget,
    )
    accepted = method_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"method {name!r} has no options {unknown}; it takes {sorted(accepted)} (check method_options in the bundle)."
        )
    return METHODS.build(name, **common, **options)


_COMMON = frozenset({"teacher", "student", "num_classes", "image_size", "num_data", "train_labels", "batch_size", "temperature",
                     "multi_label", "detach_teacher", "loss_weights", "reprogrammer_blocks", "teacher_feature_shape",
                     "teacher_trains_head", "teacher_warmup", "reprogrammer_lr_scale", "reprogrammer_budget"})  # fmt: skip


def method_options(name: str) -> list[str]:
    """The method-specific options of method ``name`` (what ``method_options`` in a bundle may set)."""
    import inspect

    builder = METHODS._builders[name]
    params = inspect.signature(builder).parameters.values()
    return sorted(
        p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _COMMON
    )


def _need_teacher(name: str, teacher: nn.Module | None, cache_ok: bool = False, shape=None) -> None:
    if teacher is None and not (cache_ok and shape is not None):
        hint = " or a feature cache (teacher_feature_shape)" if cache_ok else " (a feature cache cannot serve it)"
        raise ValueError(f"method {name!r} needs the teacher network{hint}.")


def _probe_loss(multi_label: bool) -> MethodLoss:
    return MethodLoss({"ce_student": 1.0}, multi_label=multi_label)


def _reference_stage(classifier: TeacherClassifier, multi_label: bool) -> Stage:
    return Stage(ReferenceNet(classifier), _probe_loss(multi_label), {"ce_student": 1.0})


def _kd_from_branch(name, branch, student, multi_label, temperature, weights, stage_weights=None) -> Method:
    """Stage 1 trains ``branch`` (a teacher classifier) with CE; stage 2 distils its logits into the student."""
    net = DistillNet(student, branch=branch)
    loss = MethodLoss(weights, temperature=temperature, multi_label=multi_label)
    return Method(name, net, loss, dict(weights), stage1=_reference_stage(branch, multi_label))


# --- the student and the teacher references -------------------------------------------------------------------


@METHODS.register("student")
def _student(student, multi_label=False, **_: Any) -> Method:
    """The student alone, CE (BCE for multi-label)."""
    return Method("student", StudentNet(student), _probe_loss(multi_label), {"ce_student": 1.0})


@METHODS.register("teacher_linear")
def _teacher_linear(teacher, num_classes, multi_label=False, **_: Any) -> Method:
    """Upper-bound reference: a linear probe on the frozen teacher's pooled features. Saves teacher + head."""
    _need_teacher("teacher_linear", teacher)
    net = ReferenceNet(TeacherClassifier(teacher, num_classes))
    return Method("teacher_linear", net, _probe_loss(multi_label), {"ce_student": 1.0})


@METHODS.register("teacher_finetune")
def _teacher_finetune(teacher, num_classes, multi_label=False, image_size=224, **_: Any) -> Method:
    """Upper-bound reference: a trainable copy of the teacher plus a linear head, all trained. Saves teacher + head.

    Only the layers on the feature path train: those the pooled feature skips (SAM's neck in LVM-Med, PMC-CLIP's
    attention pool under average pooling) get no gradient and stay frozen.
    """
    _need_teacher("teacher_finetune", teacher)
    tuned = TunedTeacher(teacher, train_mode=True)
    ran: set[int] = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: ran.add(id(mod))) for m in tuned.modules()]
    probe_forward(tuned, image_size, hooks)
    for m in tuned.modules():
        for p in m.parameters(recurse=False):
            p.requires_grad_(id(m) in ran)
    net = ReferenceNet(TeacherClassifier(tuned, num_classes))
    return Method("teacher_finetune", net, _probe_loss(multi_label), {"ce_student": 1.0})


# --- two-stage logit distillation -----------------------------------------------------------------------------


#: Hinton KD's weights in the reference recipes (RepDistiller ``-r 0.1 -a 0.9``, mdistiller): ``0.1 CE + 0.9 KD``
CE_WEIGHT, KD_WEIGHT = 0.1, 0.9


@METHODS.register("kd")
def _kd(teacher, student, num_classes, temperature=4.0, multi_label=False, teacher_feature_shape=None,
        kd_weight: float = KD_WEIGHT, ce_weight: float = CE_WEIGHT, **_: Any) -> Method:  # fmt: skip
    """Hinton KD from a linearly probed teacher: stage 1 trains the probe, stage 2 ``ce_weight * CE + kd_weight *
    KD`` (0.1 and 0.9: the reference recipes, RepDistiller's ``-r 0.1 -a 0.9`` and mdistiller's KD config)."""
    _need_teacher("kd", teacher, cache_ok=True, shape=teacher_feature_shape)
    branch = TeacherClassifier(teacher, num_classes, feature_shape=teacher_feature_shape)
    return _kd_from_branch("kd", branch, student, multi_label, temperature, {"ce_student": ce_weight, "kd": kd_weight})


@METHODS.register("direct_reprogramming")
def _direct_reprogramming(teacher, student, num_classes, temperature=4.0, multi_label=False, loss_weights=None,
                          reprogrammer_blocks=2, teacher_feature_shape=None,
                          reprogrammer_budget: float | None = REPROGRAMMER_BUDGET, **_: Any) -> Method:  # fmt: skip
    """RD without co-training: stage 1 trains ``g`` and ``h`` on the frozen teacher (CE), stage 2 distils the
    frozen ``h(g(T(x)))`` into the student (its own head) with RD's ``ce_student``, ``kd`` and ``cka`` weights.
    ``g`` has the width RD's would have (``reprogrammer_budget``), so the two compare equal ``g``."""
    _need_teacher("direct_reprogramming", teacher, cache_ok=True, shape=teacher_feature_shape)
    shape = tuple(teacher_feature_shape) if teacher_feature_shape is not None else tuple(teacher.feature_shape)
    width = budget_width(shape, student, reprogrammer_budget, num_blocks=reprogrammer_blocks)
    branch = TeacherClassifier(teacher, num_classes, feature_shape=teacher_feature_shape,
                               reprogrammer_dim=student.feature_dim, reprogrammer_blocks=reprogrammer_blocks,
                               reprogrammer_width=width)  # fmt: skip
    weights = {
        k: v for k, v in (loss_weights or {"ce_student": 1.0, "kd": 1.0, "cka": 1.0}).items() if k != "ce_teacher"
    }
    loss = MethodLoss({k: _initial(v) for k, v in weights.items()}, temperature=temperature, multi_label=multi_label)
    return Method("direct_reprogramming", DistillNet(student, branch=branch), loss, weights,
                  stage1=_reference_stage(branch, multi_label))  # fmt: skip


@METHODS.register("lora_kd")
def _lora_kd(teacher, student, num_classes, temperature=4.0, multi_label=False, image_size=224,
             kd_weight: float = KD_WEIGHT, ce_weight: float = CE_WEIGHT, lora_rank: int = 8, lora_alpha: float = 16.0, lora_target_modules=None,
             **_: Any) -> Method:  # fmt: skip
    """Stage 1: LoRA adapters (peft) in a copy of the teacher + a linear head, trained with CE; stage 2: KD."""
    _need_teacher("lora_kd", teacher)
    tuned = lora_teacher(
        teacher, rank=lora_rank, alpha=lora_alpha, target_modules=lora_target_modules, image_size=image_size
    )
    branch = TeacherClassifier(tuned, num_classes)
    return _kd_from_branch(
        "lora_kd", branch, student, multi_label, temperature, {"ce_student": ce_weight, "kd": kd_weight}
    )


@METHODS.register("vpt_kd")
def _vpt_kd(teacher, student, num_classes, temperature=4.0, multi_label=False, kd_weight: float = KD_WEIGHT,
            ce_weight: float = CE_WEIGHT,
            num_prompts: int = 10, **_: Any) -> Method:  # fmt: skip
    """Stage 1: visual prompts in a copy of a ViT teacher + a linear head, trained with CE; stage 2: KD."""
    _need_teacher("vpt_kd", teacher)
    branch = TeacherClassifier(vpt_teacher(teacher, num_prompts=num_prompts), num_classes)
    return _kd_from_branch(
        "vpt_kd", branch, student, multi_label, temperature, {"ce_student": ce_weight, "kd": kd_weight}
    )


# --- Reprogramming Distillation and its ablations ---------------------------------------------------------------


def _initial(spec) -> float:
    """A weight's value at the first step (the schedule handler sets it again before every iteration)."""
    return WeightSchedule(**spec)(0.0) if isinstance(spec, Mapping) else float(spec)


@METHODS.register("rd")
def _rd(teacher, student, num_classes, temperature=4.0, multi_label=False, detach_teacher=False, loss_weights=None,
        reprogrammer_blocks=2, teacher_feature_shape=None, teacher_trains_head: bool = True,
        teacher_warmup: bool = False, reprogrammer_lr_scale: float = 1.0, co_training: bool = True,
        use_kd: bool = True, use_cka: bool = True, cka_memory: int = 0,
        reprogrammer_budget: float | None = REPROGRAMMER_BUDGET, **rest: Any) -> Method:  # fmt: skip
    """RD (co-training of ``g, h`` and the student). Ablation switches: ``co_training=False`` is
    ``direct_reprogramming``; ``use_kd=False`` / ``use_cka=False`` fix that weight at 0; ``detach_teacher``;
    ``teacher_trains_head`` (:class:`RDNet`); ``cka_memory``: samples of recent features joining the batch in the
    CKA term (:class:`RDLoss`). ``teacher_warmup``: a stage 1 trains the teacher branch ``h(g(T(x)))``
    (:class:`RDTeacherBranch`) alone with CE, then co-training starts from it and trains ``g`` and ``h`` on
    (docs/methods.md, five seeds: a 240-epoch warm-up makes the branch learn and brings the student to or above KD
    where the teacher beats the student alone; it is no better than the default where it does not, so the bundles
    leave it off). ``reprogrammer_lr_scale``: ``g`` trains at this times the learning rate in both stages
    (:meth:`Method.param_groups`)."""
    if not co_training:
        method = _direct_reprogramming(teacher=teacher, student=student, num_classes=num_classes,
                                       temperature=temperature, multi_label=multi_label,
                                       loss_weights=_ablate(loss_weights, use_kd, use_cka),
                                       reprogrammer_blocks=reprogrammer_blocks,
                                       teacher_feature_shape=teacher_feature_shape,
                                       reprogrammer_budget=reprogrammer_budget)  # fmt: skip
        method.name = "rd"
        method.info["co_training"] = False
        return method
    if not reprogrammer_lr_scale > 0:
        raise ValueError(f"reprogrammer_lr_scale multiplies the learning rate of RD's reprogrammer g and must be > 0, "
                         f"got {reprogrammer_lr_scale}.")  # fmt: skip
    weights = _ablate(loss_weights, use_kd, use_cka)
    net = RDNet(
        teacher,
        student,
        num_blocks=reprogrammer_blocks,
        teacher_feature_shape=teacher_feature_shape,
        teacher_trains_head=teacher_trains_head,
        reprogrammer_budget=reprogrammer_budget,
    )
    loss = RDLoss(**{k: _initial(v) for k, v in weights.items()}, temperature=temperature, multi_label=multi_label,
                  detach_teacher=detach_teacher, cka_memory=cka_memory)  # fmt: skip
    warmup = None
    if teacher_warmup:
        warmup = Stage(ReferenceNet(net.teacher_branch()), _probe_loss(multi_label), {"ce_student": 1.0}, frozen=False)
    return Method("rd", net, loss, weights, stage1=warmup, lr_scales=[(net.reprogrammer, float(reprogrammer_lr_scale))],
                  info={"co_training": True, "teacher_trains_head": teacher_trains_head,
                        "teacher_warmup": bool(teacher_warmup),
                        "reprogrammer_lr_scale": float(reprogrammer_lr_scale),
                        "reprogrammer_budget": reprogrammer_budget})  # fmt: skip


def _ablate(loss_weights, use_kd: bool, use_cka: bool) -> dict:
    weights = dict(loss_weights) if loss_weights is not None else rd_default_weights()
    for term, keep in (("kd", use_kd), ("cka", use_cka)):
        if not keep:
            weights[term] = 0.0
    return weights


# --- feature distillation baselines from the frozen teacher -------------------------------------------------------


#: the layers each feature method distils by default, as its reference code taps them: ``stages``, the ends of the
#: last four stages of each network (RepDistiller's ``feat[1:-1]`` for AT and VID; SemCKD's every stage), ``middle``,
#: the second of those (FitNets: RepDistiller's ``--hint_layer 2``, the second stage's output), ``last``, the last
#: map (MGD's classification code, NORM's). ``feature_layers="last"`` taps the last map for every method.
REFERENCE_LAYERS = {
    "semckd": "stages",
    "at": "stages",
    "vid": "stages",
    "hint": "middle",
    "mgd": "last",
    "norm": "last",
}
FEATURE_LAYER_CHOICES = ("reference", "last")
_STAGES = 4


def _default_layers(method: str, choice: str, teacher: nn.Module, student: nn.Module, image_size: int):
    """(teacher layers, student layers) for ``method`` under ``choice`` (see :data:`REFERENCE_LAYERS`)."""
    if choice not in FEATURE_LAYER_CHOICES:
        raise ValueError(f"feature_layers is one of {FEATURE_LAYER_CHOICES}, got {choice!r}.")
    rule = REFERENCE_LAYERS.get(method, "last") if choice == "reference" else "last"
    if rule == "last":
        return [default_feature_layer(teacher, image_size, "teacher")], [
            default_feature_layer(student, image_size, "student")
        ]
    t = default_feature_layers(teacher, image_size, _STAGES, "teacher")
    s = default_feature_layers(student, image_size, _STAGES, "student")
    n = min(len(t), len(s))  # pair the last n stages where one network has fewer
    t, s = t[-n:], s[-n:]
    if rule == "middle":
        i = 1 if n >= 2 else 0
        return [t[i]], [s[i]]
    return t, s


def _given(layers) -> list[str] | None:
    if layers is None:
        return None
    return [layers] if isinstance(layers, str) else list(layers)


def _class_indices(labels: Sequence | None) -> list[int] | None:
    """``labels`` as one class index per sample, or ``None`` when they are not (absent, multi-hot)."""
    if labels is None:
        return None
    try:
        return [int(label) for label in labels]
    except (TypeError, ValueError):
        return None


def _feature_method(method: str):
    def build(teacher, student, multi_label=False, temperature=4.0, image_size=224, num_data=None, train_labels=None,
              batch_size=None,
              teacher_layers=None, student_layers=None, feature_layers: str = "reference", weight: float | None = None,
              loss_options: Mapping | None = None, **_: Any) -> Method:  # fmt: skip
        _need_teacher(method, teacher)
        opts = dict(loss_options or {})
        pooled = method == "crd"  # CRD contrasts the penultimate (pooled) vectors
        if pooled:
            s_shapes, t_shapes, s_layers, t_layers = [(student.feature_dim,)], [(int(teacher.feature_dim),)], [], []
            opts.setdefault("num_data", num_data)
            opts.setdefault("labels", None if multi_label else _class_indices(train_labels))
        else:
            t_layers, s_layers = _given(teacher_layers), _given(student_layers)
            if t_layers is None or s_layers is None:
                t_default, s_default = _default_layers(method, feature_layers, teacher, student, image_size)
                t_layers, s_layers = t_layers or t_default, s_layers or s_default
        if method == "semckd":
            opts.setdefault("batch_size", batch_size)
        net = DistillNet(student, teacher=teacher, teacher_layers=t_layers, student_layers=s_layers)
        if not pooled:  # per-sample shapes of the taps, in the [C, H, W] layout the losses receive
            t_shapes = net.teacher_taps.shapes(image_size)
            s_shapes = net.student_taps.shapes(image_size)
        one = lambda s: s[0] if len(s) == 1 else s  # noqa: E731
        feature_loss = build_kd_loss(method, one(s_shapes), one(t_shapes), **opts)
        if method == "norm":  # the contracted feature feeds the classifier: E and C fold into the deployed head
            net.set_head_transform(_norm_head_transform(feature_loss, s_shapes, student, s_layers))
        weights = {"ce_student": 1.0, method: FEATURE_KD_WEIGHTS[method] if weight is None else float(weight)}
        loss = MethodLoss(weights, temperature=temperature, multi_label=multi_label, feature_loss=feature_loss,
                          feature_term=method, feature_inputs="pooled" if pooled else "layers", needs_index=pooled)  # fmt: skip
        info = dict(teacher_layers=t_layers, student_layers=s_layers, teacher_shapes=t_shapes, student_shapes=s_shapes)
        return Method(method, net, loss, dict(weights), sample_indices=pooled, info=info)

    build.__doc__ = (
        f"``{method}`` from the frozen teacher: ``CE + w * {method}(student layers, teacher layers)``; default layers: "
        f"{REFERENCE_LAYERS.get(method, 'pooled vectors')!r} (:data:`REFERENCE_LAYERS`; ``feature_layers='last'``: the "
        "last map of each network), or ``teacher_layers``/``student_layers``."
    )
    return build


def _norm_head_transform(feature_loss: nn.Module, s_shapes, student: nn.Module, s_layers) -> nn.Module:
    """NORM's feature transform (``expand``, ``contract``), which sits between the student's last map and its classifier: the tapped
    map must be the one the student pools into ``f_S`` (same channels ``d_S``), else say which layer to tap."""
    channels = int(s_shapes[0][0])
    if channels != int(student.feature_dim):
        raise ValueError(
            f"NORM feeds its contracted feature to the student's classifier, so it taps the student's last feature "
            f"map ({student.feature_dim} channels, pooled into f_S); {s_layers} has {channels}. Leave "
            "student_layers unset (default: the last map)."
        )
    return feature_loss.ft


#: NORM's training loop standardises the logits before CE and KD and scales them by ``ceta`` (OSVAI/NORM, -c 2.5)
NORM_LOGIT_STANDARDISATION = 2.5


def _norm_method():
    """NORM: the feature-method builder plus the authors' logit standardisation (an option of NORM's alone)."""
    import inspect

    generic = _feature_method("norm")

    def build(num_classes: int, multi_label: bool = False,
              logit_standardisation: float | None = NORM_LOGIT_STANDARDISATION, **kwargs: Any) -> Method:  # fmt: skip
        method = generic(multi_label=multi_label, **kwargs)
        if logit_standardisation is not None and (multi_label or num_classes < 3):
            # two standardised logits are +-1 whatever the network does (and sigmoid outputs are not a distribution):
            # CE would carry no gradient, so the authors' standardisation is left out, said in the log and the info
            logging.getLogger(__name__).warning(
                "norm: logit standardisation needs one label among >= 3 classes (got %s); training on the logits "
                "as they are (logit_standardisation=None).",
                "multi-label data" if multi_label else f"{num_classes} classes",
            )
            logit_standardisation = None
        method.loss.logit_standardisation = logit_standardisation
        method.info["logit_standardisation"] = logit_standardisation
        method.info["feature_transform"] = method.loss.feature_loss.ft.kind
        return method

    params = [p for p in inspect.signature(generic).parameters.values() if p.kind != p.VAR_KEYWORD]
    extra = inspect.Parameter(
        "logit_standardisation", inspect.Parameter.KEYWORD_ONLY, default=NORM_LOGIT_STANDARDISATION
    )
    build.__signature__ = inspect.Signature(params + [extra])  # what method_options reads
    build.__doc__ = generic.__doc__ + (
        " NORM's feature transform is the authors' ``conv1x1 + BN`` with a residual (``loss_options: "
        "{'feature_transform': 'plain'}``: two linear layers); ``logit_standardisation`` (default 2.5, None: off) "
        "scales the standardised logits that CE reads, on single-label data with >= 3 classes."
    )
    return build


for _m in ("hint", "at", "vid", "crd", "semckd", "mgd"):
    METHODS.register(_m, _feature_method(_m))
METHODS.register("norm", _norm_method())


# --- what a method deploys ------------------------------------------------------------------------------------------


def _deploy_student(student, num_classes, **_: Any) -> nn.Module:
    from monai_rd.networks.nets.students import StudentClassifier

    return StudentClassifier(student, num_classes)


def _deploy_teacher_linear(teacher, num_classes, teacher_weights=None, **_: Any) -> nn.Module:
    from monai_rd.networks.nets.teachers import build_teacher

    return TeacherClassifier(build_teacher(teacher, weights=teacher_weights), num_classes)


def _deploy_teacher_finetune(teacher, num_classes, teacher_weights=None, **_: Any) -> nn.Module:
    from monai_rd.networks.nets.teachers import build_teacher

    return TeacherClassifier(TunedTeacher(build_teacher(teacher, weights=teacher_weights)), num_classes)


#: methods whose ``model.pt`` is not the student: the teacher references save teacher + head
DEPLOYABLES = {"teacher_linear": _deploy_teacher_linear, "teacher_finetune": _deploy_teacher_finetune}


def deploys_student(method: str) -> bool:
    """Whether ``method``'s ``model.pt`` is a student (every method but the teacher references)."""
    return method not in DEPLOYABLES


def build_deployable(method: str, student: str, teacher: str, num_classes: int, teacher_weights=None) -> nn.Module:
    """The architecture of method ``method``'s saved ``model.pt``, to load it with ``strict=True`` (evaluate,
    inference): the :class:`StudentClassifier` for every method but ``teacher_linear``/``teacher_finetune``,
    which save a :class:`TeacherClassifier` (teacher + head). Images ``[B, 3, H, W]`` in ``[0, 1]`` -> ``[B, C]``.
    """
    needs_teacher(method)  # validates the name
    builder = DEPLOYABLES.get(method, _deploy_student)
    return builder(student=student, teacher=teacher, num_classes=num_classes, teacher_weights=teacher_weights)

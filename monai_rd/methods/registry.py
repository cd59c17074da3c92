"""``METHODS``: every method of the comparison, registered once with its metadata, built by name into network +
loss (+ stage 1).

Each method is one ``@METHODS.register(name, ...)`` on its builder (:class:`monai_rd.methods.spec.MethodSpec`:
whether it uses the teacher, what it deploys, its stage 1, the layers it distils, its default loss weights and
its options with their defaults and checks). A bundle builds its method with::

    "method_def": "$monai_rd.methods.build_method(@method, teacher=@teacher_def, student=@student_def, ...)"

and trains ``method_def.network`` with ``method_def.loss`` on ``method_def.parameters()``; when
``method_def.stage1`` is set, its network is trained first with its own loss (a teacher-side classifier that the
distillation stage then reads, frozen).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn as nn

from monai_rd.handlers.loss_weight_schedule import WeightSchedule
from monai_rd.losses.baselines import build_kd_loss
from monai_rd.losses.method_loss import MethodLoss
from monai_rd.losses.rd import RDLoss, rd_default_weights
from monai_rd.methods.spec import (
    Method,
    MethodContext,
    MethodRegistry,
    MethodSpec,
    Option,
    RegistrySetView,
    RegistryView,
    Stage,
)
from monai_rd.networks.blocks.adapters import lora_teacher, vpt_teacher
from monai_rd.networks.blocks.reprogrammer import budget_width
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
from monai_rd.networks.nets.rdnet import REPROGRAMMER_BUDGET, RDNet
from monai_rd.networks.nets.volume_teachers import check_teacher_dims

__all__ = [
    "METHODS",
    "Method",
    "MethodContext",
    "MethodSpec",
    "Option",
    "Stage",
    "build_method",
    "build_deployable",
    "method_options",
    "DEPLOYABLES",
    "needs_teacher",
    "deploys_student",
    "TEACHERLESS_METHODS",
    "FEATURE_KD_WEIGHTS",
    "REFERENCE_LAYERS",
]

METHODS = MethodRegistry()


def build_method(name: str, *context: Any, **arguments: Any) -> Method:
    """Build method ``name`` (see :data:`METHODS`) from the bundle's teacher and student.

    Args:
        name: the method id.
        context: the :class:`MethodContext` fields by position (``teacher, student, num_classes, image_size, ...``).
        arguments: the other :class:`MethodContext` fields by name, then the method's options
            (:attr:`MethodSpec.options`: ``method_options`` in the bundle, e.g. ``kd_weight``, ``teacher_layers``,
            and the bundle arguments a bundle passes to every method, :meth:`MethodRegistry.bundle_args`: RD's
            ``reprogrammer_budget``, ``teacher_warmup`` ..., which the methods that do not declare them ignore).
            An option the method does not take is refused with a ``TypeError`` that names it and lists those it
            takes.
    """
    spec = METHODS[name]  # an unknown name: KeyError listing the methods
    shared = {k: arguments.pop(k) for k in MethodContext.field_names() if k in arguments}
    ctx = MethodContext(*context, **shared)
    check_teacher_dims(ctx.teacher, getattr(ctx.student, "spatial_dims", 2))  # a 2D teacher on volumes: refused
    options = spec.resolve(arguments, ignorable=METHODS.bundle_args())
    if spec.uses_teacher and ctx.teacher is None and not (spec.teacher_cache and ctx.teacher_feature_shape is not None):
        hint = (
            " or a feature cache (teacher_feature_shape)"
            if spec.teacher_cache
            else " (a feature cache cannot serve it)"
        )
        raise ValueError(f"method {name!r} needs the teacher network{hint}.")
    return spec.builder(spec, ctx, **options)


def method_options(name: str) -> list[str]:
    """The method-specific options of method ``name`` (what ``method_options`` in a bundle may set)."""
    return METHODS[name].method_options()


def needs_teacher(name: str) -> bool:
    """Whether method ``name`` uses the teacher network (``student`` does not; a bundle then never builds one)."""
    return METHODS[name].uses_teacher


def deploys_student(method: str) -> bool:
    """Whether ``method``'s ``model.pt`` is a student (every method but the teacher references)."""
    return METHODS[method].deploys_student


def _deploy_student(student, num_classes, **_: Any) -> nn.Module:
    from monai_rd.networks.nets.students import StudentClassifier

    return StudentClassifier(student, num_classes)


def build_deployable(method: str, student: str, teacher: str, num_classes: int, teacher_weights=None) -> nn.Module:
    """The architecture of method ``method``'s saved ``model.pt``, to load it with ``strict=True`` (evaluate,
    inference): the :class:`StudentClassifier` for every method but ``teacher_linear``/``teacher_finetune``,
    which save a :class:`TeacherClassifier` (teacher + head). Images ``[B, 3, H, W]`` in ``[0, 1]`` -> ``[B, C]``.
    """
    builder = METHODS[method].deploy or _deploy_student
    return builder(student=student, teacher=teacher, num_classes=num_classes, teacher_weights=teacher_weights)


# --- views of the registry (each fact lives in its method's registration) -------------------------------------------

#: methods that never build a teacher (a bundle disables its teacher definition for them)
TEACHERLESS_METHODS = RegistrySetView(lambda: frozenset(s.name for s in METHODS.specs() if not s.uses_teacher))

#: methods whose ``model.pt`` is not the student, with the builder of what they save (the teacher references)
DEPLOYABLES = RegistryView(lambda: {s.name: s.deploy for s in METHODS.specs() if s.deploy is not None})

#: default weight of each feature-distillation term (RepDistiller's ``-b`` defaults; AT's beta=1000 and MGD's
#: alpha are already inside the losses), added to the student's CE with weight 1.
FEATURE_KD_WEIGHTS = RegistryView(
    lambda: {s.name: s.default_weights[s.name] for s in METHODS.specs() if s.reference_layers is not None}
)

#: the layers each feature method distils by default, as its reference code taps them: ``stages``, the ends of the
#: last four stages of each network (RepDistiller's ``feat[1:-1]`` for AT and VID; SemCKD's every stage), ``middle``,
#: the second of those (FitNets: RepDistiller's ``--hint_layer 2``, the second stage's output), ``last``, the last
#: map (MGD's classification code, NORM's). ``feature_layers="last"`` taps the last map for every method.
REFERENCE_LAYERS = RegistryView(
    lambda: {s.name: s.reference_layers for s in METHODS.specs() if s.reference_layers not in (None, "pooled")}
)


# --- helpers shared by the builders ---------------------------------------------------------------------------------


def _probe_loss(multi_label: bool) -> MethodLoss:
    return MethodLoss({"ce_student": 1.0}, multi_label=multi_label)


def _reference_stage(classifier: TeacherClassifier, multi_label: bool) -> Stage:
    return Stage(ReferenceNet(classifier), _probe_loss(multi_label), {"ce_student": 1.0})


def _kd_from_branch(spec: MethodSpec, ctx: MethodContext, branch: nn.Module, weights: dict) -> Method:
    """Stage 1 trains ``branch`` (a teacher classifier) with CE; stage 2 distils its logits into the student."""
    net = DistillNet(ctx.student, branch=branch)
    loss = MethodLoss(weights, temperature=ctx.temperature, multi_label=ctx.multi_label)
    return Method(spec.name, net, loss, dict(weights), stage1=_reference_stage(branch, ctx.multi_label))


def _initial(spec) -> float:
    """A weight's value at the first step (the schedule handler sets it again before every iteration)."""
    return WeightSchedule(**spec)(0.0) if isinstance(spec, Mapping) else float(spec)


# --- the student and the teacher references -------------------------------------------------------------------


def _deploy_teacher_linear(teacher, num_classes, teacher_weights=None, **_: Any) -> nn.Module:
    from monai_rd.networks.nets.teachers import build_teacher

    return TeacherClassifier(build_teacher(teacher, weights=teacher_weights), num_classes)


def _deploy_teacher_finetune(teacher, num_classes, teacher_weights=None, **_: Any) -> nn.Module:
    from monai_rd.networks.nets.teachers import build_teacher

    return TeacherClassifier(TunedTeacher(build_teacher(teacher, weights=teacher_weights)), num_classes)


@METHODS.register("student", uses_teacher=False, default_weights={"ce_student": 1.0})
def _student(spec: MethodSpec, ctx: MethodContext) -> Method:
    """The student alone, CE (BCE for multi-label)."""
    return Method(spec.name, StudentNet(ctx.student), _probe_loss(ctx.multi_label), spec.weights())


@METHODS.register("teacher_linear", deploy=_deploy_teacher_linear, default_weights={"ce_student": 1.0})
def _teacher_linear(spec: MethodSpec, ctx: MethodContext) -> Method:
    """Upper-bound reference: a linear probe on the frozen teacher's pooled features. Saves teacher + head."""
    net = ReferenceNet(TeacherClassifier(ctx.teacher, ctx.num_classes))
    return Method(spec.name, net, _probe_loss(ctx.multi_label), spec.weights())


@METHODS.register("teacher_finetune", deploy=_deploy_teacher_finetune, default_weights={"ce_student": 1.0})
def _teacher_finetune(spec: MethodSpec, ctx: MethodContext) -> Method:
    """Upper-bound reference: a trainable copy of the teacher plus a linear head, all trained. Saves teacher + head.

    Only the layers on the feature path train: those the pooled feature skips (SAM's neck in LVM-Med, PMC-CLIP's
    attention pool under average pooling) get no gradient and stay frozen.
    """
    tuned = TunedTeacher(ctx.teacher, train_mode=True)
    ran: set[int] = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: ran.add(id(mod))) for m in tuned.modules()]
    probe_forward(tuned, ctx.image_size, hooks)
    for m in tuned.modules():
        for p in m.parameters(recurse=False):
            p.requires_grad_(id(m) in ran)
    net = ReferenceNet(TeacherClassifier(tuned, ctx.num_classes))
    return Method(spec.name, net, _probe_loss(ctx.multi_label), spec.weights())


# --- two-stage logit distillation -----------------------------------------------------------------------------


#: Hinton KD's weights in the reference recipes (RepDistiller ``-r 0.1 -a 0.9``, mdistiller): ``0.1 CE + 0.9 KD``
CE_WEIGHT, KD_WEIGHT = 0.1, 0.9
KD_RECIPE = {"ce_student": CE_WEIGHT, "kd": KD_WEIGHT}
KD_OPTIONS = (
    Option("kd_weight", KD_WEIGHT, "weight of the KD term (RepDistiller's -a 0.9)"),
    Option("ce_weight", CE_WEIGHT, "weight of the student's CE (RepDistiller's -r 0.1)"),
)


@METHODS.register("kd", teacher_cache=True, stage1="always", default_weights=KD_RECIPE, options=KD_OPTIONS)
def _kd(spec: MethodSpec, ctx: MethodContext, kd_weight: float, ce_weight: float) -> Method:
    """Hinton KD from a linearly probed teacher: stage 1 trains the probe, stage 2 ``ce_weight * CE + kd_weight *
    KD`` (0.1 and 0.9: the reference recipes, RepDistiller's ``-r 0.1 -a 0.9`` and mdistiller's KD config)."""
    branch = TeacherClassifier(ctx.teacher, ctx.num_classes, feature_shape=ctx.teacher_feature_shape)
    return _kd_from_branch(spec, ctx, branch, {"ce_student": ce_weight, "kd": kd_weight})


@METHODS.register(
    "lora_kd", stage1="always", default_weights=KD_RECIPE,
    options=KD_OPTIONS + (
        Option("lora_rank", 8, "rank of the LoRA adapters"),
        Option("lora_alpha", 16.0, "LoRA scaling alpha"),
        Option("lora_target_modules", None, "the teacher's modules that get adapters (None: its attention/linear "
                                            "layers, see monai_rd.networks.blocks.lora_teacher)"),
    ),
)  # fmt: skip
def _lora_kd(spec: MethodSpec, ctx: MethodContext, kd_weight: float, ce_weight: float, lora_rank: int,
             lora_alpha: float, lora_target_modules) -> Method:  # fmt: skip
    """Stage 1: LoRA adapters (peft) in a copy of the teacher + a linear head, trained with CE; stage 2: KD."""
    tuned = lora_teacher(
        ctx.teacher, rank=lora_rank, alpha=lora_alpha, target_modules=lora_target_modules, image_size=ctx.image_size
    )
    branch = TeacherClassifier(tuned, ctx.num_classes)
    return _kd_from_branch(spec, ctx, branch, {"ce_student": ce_weight, "kd": kd_weight})


@METHODS.register(
    "vpt_kd", stage1="always", default_weights=KD_RECIPE,
    options=KD_OPTIONS + (Option("num_prompts", 10, "visual prompts prepended to the ViT's tokens"),),
)  # fmt: skip
def _vpt_kd(spec: MethodSpec, ctx: MethodContext, kd_weight: float, ce_weight: float, num_prompts: int) -> Method:
    """Stage 1: visual prompts in a copy of a ViT teacher + a linear head, trained with CE; stage 2: KD."""
    branch = TeacherClassifier(vpt_teacher(ctx.teacher, num_prompts=num_prompts), ctx.num_classes)
    return _kd_from_branch(spec, ctx, branch, {"ce_student": ce_weight, "kd": kd_weight})


# --- Reprogramming Distillation and its ablations ---------------------------------------------------------------

#: the bundle arguments of RD's reprogrammer, which direct reprogramming shares (so the two compare equal ``g``)
LOSS_WEIGHTS = Option(
    "loss_weights", None, "RD's loss-weight schedule ({term: weight or {start, end, schedule}}; None: the "
    "package's default, monai_rd.losses.rd_default_weights)", bundle_arg=True,
)  # fmt: skip
REPROGRAMMER_BLOCKS = Option("reprogrammer_blocks", 2, "residual blocks in the reprogrammer g", bundle_arg=True)
REPROGRAMMER_BUDGET_OPTION = Option(
    "reprogrammer_budget", REPROGRAMMER_BUDGET, "g holds at most this fraction of the student's parameters (a "
    "bottleneck, monai_rd.networks.blocks.budget_width); None: the paper's full-width g", bundle_arg=True,
)  # fmt: skip
REPROGRAMMER_OPTIONS = (LOSS_WEIGHTS, REPROGRAMMER_BLOCKS, REPROGRAMMER_BUDGET_OPTION)


@METHODS.register(
    "direct_reprogramming", teacher_cache=True, stage1="always",
    default_weights={"ce_student": 1.0, "kd": 1.0, "cka": 1.0}, options=REPROGRAMMER_OPTIONS,
)  # fmt: skip
def _direct_reprogramming(spec: MethodSpec, ctx: MethodContext, loss_weights, reprogrammer_blocks: int,
                          reprogrammer_budget: float | None) -> Method:  # fmt: skip
    """RD without co-training: stage 1 trains ``g`` and ``h`` on the frozen teacher (CE), stage 2 distils the
    frozen ``h(g(T(x)))`` into the student (its own head) with RD's ``ce_student``, ``kd`` and ``cka`` weights.
    ``g`` has the width RD's would have (``reprogrammer_budget``), so the two compare equal ``g``."""
    shape = ctx.teacher_feature_shape if ctx.teacher_feature_shape is not None else tuple(ctx.teacher.feature_shape)
    width = budget_width(shape, ctx.student, reprogrammer_budget, num_blocks=reprogrammer_blocks)
    branch = TeacherClassifier(ctx.teacher, ctx.num_classes, feature_shape=ctx.teacher_feature_shape,
                               reprogrammer_dim=ctx.student.feature_dim, reprogrammer_blocks=reprogrammer_blocks,
                               reprogrammer_width=width)  # fmt: skip
    weights = {k: v for k, v in (loss_weights or spec.weights()).items() if k != "ce_teacher"}
    loss = MethodLoss({k: _initial(v) for k, v in weights.items()}, temperature=ctx.temperature,
                      multi_label=ctx.multi_label)  # fmt: skip
    return Method(spec.name, DistillNet(ctx.student, branch=branch), loss, weights,
                  stage1=_reference_stage(branch, ctx.multi_label))  # fmt: skip


@METHODS.register(
    "rd", teacher_cache=True, stage1="optional", default_weights=rd_default_weights(),
    options=REPROGRAMMER_OPTIONS + (
        Option("reprogrammer_lr_scale", 1.0, "g trains at this times the learning rate, in both stages "
               "(Method.param_groups)", check=lambda v: v > 0,
               expect="multiplies the learning rate of RD's reprogrammer g and must be > 0", bundle_arg=True),
        Option("teacher_trains_head", True, "the teacher branch's CE trains the shared head h (RDNet)",
               bundle_arg=True),
        Option("teacher_warmup", False, "a stage 1 trains the teacher branch h(g(T(x))) alone with CE, then "
               "co-training starts from it", bundle_arg=True),
        Option("detach_teacher", False, "the KD and CKA gradients stop at the teacher branch (RDLoss)",
               bundle_arg=True),
        Option("co_training", True, "False: direct_reprogramming (stage-wise g, h, then KD)"),
        Option("use_kd", True, "False: the KD weight is fixed at 0"),
        Option("use_cka", True, "False: the CKA weight is fixed at 0"),
        Option("cka_memory", 0, "samples of recent features joining the batch in the CKA term (RDLoss)"),
        Option("teacher_gate", False, "KD and CKA act only while the teacher branch's validation accuracy is at "
               "least the student's (monai_rd.handlers.DistillationGate); 'auto' (the bundles' default): on where the "
               "gate can act (single-label, co-training), off elsewhere", choices=(False, True, "auto"),
               bundle_arg=True),
        Option("teacher_gate_margin", 0.0, "the gate stays open while teacher accuracy >= student accuracy - margin "
               "(a fraction; negative: the teacher branch must be ahead by that much, so ties close it)",
               check=lambda v: -1.0 < v < 1.0, expect="is a difference of accuracies, in (-1, 1)"),
    ),
)  # fmt: skip
def _rd(spec: MethodSpec, ctx: MethodContext, loss_weights, reprogrammer_blocks: int,
        reprogrammer_budget: float | None, reprogrammer_lr_scale: float, teacher_trains_head: bool,
        teacher_warmup: bool, detach_teacher: bool, co_training: bool, use_kd: bool, use_cka: bool,
        cka_memory: int, teacher_gate: bool | str, teacher_gate_margin: float) -> Method:  # fmt: skip
    """RD (co-training of ``g, h`` and the student). Ablation switches: ``co_training=False`` is
    ``direct_reprogramming``; ``use_kd=False`` / ``use_cka=False`` fix that weight at 0; ``detach_teacher``;
    ``teacher_trains_head`` (:class:`RDNet`); ``cka_memory``: samples of recent features joining the batch in the
    CKA term (:class:`RDLoss`). ``teacher_warmup``: a stage 1 trains the teacher branch ``h(g(T(x)))``
    (:class:`RDTeacherBranch`) alone with CE, then co-training starts from it and trains ``g`` and ``h`` on
    (docs/methods.md, five seeds: a 240-epoch warm-up makes the branch learn and brings the student to or above KD
    where the teacher beats the student alone; it is no better than the default where it does not, so the bundles
    leave it off). ``reprogrammer_lr_scale``: ``g`` trains at this times the learning rate in both stages
    (:meth:`Method.param_groups`). ``teacher_gate``: after each validation, KD and CKA are switched off while the
    teacher branch classifies the validation split worse than the student (``info["gated_terms"]``, read by the
    bundles' :class:`monai_rd.handlers.DistillationGate`); ``teacher_gate_margin`` is its ``margin``
    (``info["gate_margin"]``); ``teacher_gate="auto"`` turns it on for single-label co-training and leaves it off
    where it cannot act (multi-label, ``co_training=False``)."""
    weights = _ablate(loss_weights, use_kd, use_cka)
    if teacher_gate == "auto":
        teacher_gate = co_training and not ctx.multi_label
    if teacher_gate and ctx.multi_label:
        raise ValueError(
            "teacher_gate compares single-label accuracies; leave it off for multi-label bundles (--teacher_gate "
            "false, or the bundles' default auto)."
        )
    if teacher_gate_margin != 0.0 and not teacher_gate:
        raise ValueError("teacher_gate_margin sets the distillation gate's margin; it needs teacher_gate=True.")
    if teacher_gate and not co_training:
        raise ValueError(
            "teacher_gate gates the co-trained teacher branch; it has no meaning with co_training=False "
            "(--teacher_gate false, or the bundles' default auto)."
        )
    if not co_training:
        direct = METHODS["direct_reprogramming"]
        options = direct.resolve(dict(loss_weights=weights, reprogrammer_blocks=reprogrammer_blocks,
                                      reprogrammer_budget=reprogrammer_budget))  # fmt: skip
        method = direct.builder(direct, ctx, **options)
        method.name = spec.name
        method.info["co_training"] = False
        return method
    net = RDNet(
        ctx.teacher,
        ctx.student,
        num_blocks=reprogrammer_blocks,
        teacher_feature_shape=ctx.teacher_feature_shape,
        teacher_trains_head=teacher_trains_head,
        reprogrammer_budget=reprogrammer_budget,
    )
    loss = RDLoss(**{k: _initial(v) for k, v in weights.items()}, temperature=ctx.temperature,
                  multi_label=ctx.multi_label, detach_teacher=detach_teacher, cka_memory=cka_memory)  # fmt: skip
    warmup = None
    if teacher_warmup:
        warmup = Stage(ReferenceNet(net.teacher_branch()), _probe_loss(ctx.multi_label), {"ce_student": 1.0},
                       frozen=False)  # fmt: skip
    return Method(spec.name, net, loss, weights, stage1=warmup,
                  lr_scales=[(net.reprogrammer, float(reprogrammer_lr_scale))],
                  info={"co_training": True, "teacher_trains_head": teacher_trains_head,
                        "teacher_warmup": bool(teacher_warmup),
                        "reprogrammer_lr_scale": float(reprogrammer_lr_scale),
                        "reprogrammer_budget": reprogrammer_budget,
                        "gated_terms": ("kd", "cka") if teacher_gate else (),
                        "gate_margin": float(teacher_gate_margin)})  # fmt: skip


def _ablate(loss_weights, use_kd: bool, use_cka: bool) -> dict:
    weights = dict(loss_weights) if loss_weights is not None else METHODS["rd"].weights()
    for term, keep in (("kd", use_kd), ("cka", use_cka)):
        if not keep:
            weights[term] = 0.0
    return weights


# --- feature distillation baselines from the frozen teacher -------------------------------------------------------


FEATURE_LAYER_CHOICES = ("reference", "last")
_STAGES = 4
FEATURE_OPTIONS = (
    Option("teacher_layers", None, "the teacher layer(s) to distil (None: the method's reference layers)"),
    Option("student_layers", None, "the student layer(s) paired with them (None: the method's reference layers)"),
    Option("feature_layers", "reference", "'reference': the layers the method's reference code taps "
           "(REFERENCE_LAYERS); 'last': the last map of each network", choices=FEATURE_LAYER_CHOICES),
    Option("weight", None, "weight of the feature term (None: the method's default_weights, FEATURE_KD_WEIGHTS)"),
    Option("loss_options", None, "keyword arguments of the feature loss (monai_rd.losses.build_kd_loss)"),
)  # fmt: skip


def _default_layers(spec: MethodSpec, choice: str, teacher: nn.Module, student: nn.Module, image_size: int):
    """(teacher layers, student layers) for ``spec`` under ``choice`` (see :data:`REFERENCE_LAYERS`)."""
    rule = spec.reference_layers if choice == "reference" else "last"
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


def _feature(spec: MethodSpec, ctx: MethodContext, teacher_layers, student_layers, feature_layers: str,
             weight: float | None, loss_options: Mapping | None) -> Method:  # fmt: skip
    """A feature method from the frozen teacher: ``CE + w * <method>(student layers, teacher layers)``; default
    layers: its ``reference_layers`` (:data:`REFERENCE_LAYERS`; ``feature_layers='last'``: the last map of each
    network; CRD: the pooled vectors), or ``teacher_layers``/``student_layers``."""
    method, teacher, student, image_size = spec.name, ctx.teacher, ctx.student, ctx.image_size
    opts = dict(loss_options or {})
    pooled = spec.reference_layers == "pooled"  # CRD contrasts the penultimate (pooled) vectors
    if pooled:
        s_shapes, t_shapes, s_layers, t_layers = [(student.feature_dim,)], [(int(teacher.feature_dim),)], [], []
        opts.setdefault("num_data", ctx.num_data)
        opts.setdefault("labels", None if ctx.multi_label else _class_indices(ctx.train_labels))
    else:
        t_layers, s_layers = _given(teacher_layers), _given(student_layers)
        if t_layers is None or s_layers is None:
            t_default, s_default = _default_layers(spec, feature_layers, teacher, student, image_size)
            t_layers, s_layers = t_layers or t_default, s_layers or s_default
    if method == "semckd":
        opts.setdefault("batch_size", ctx.batch_size)
    net = DistillNet(student, teacher=teacher, teacher_layers=t_layers, student_layers=s_layers)
    if not pooled:  # per-sample shapes of the taps, in the [C, H, W] layout the losses receive
        t_shapes = net.teacher_taps.shapes(image_size)
        s_shapes = net.student_taps.shapes(image_size)
    one = lambda s: s[0] if len(s) == 1 else s  # noqa: E731
    feature_loss = build_kd_loss(method, one(s_shapes), one(t_shapes), **opts)
    if method == "norm":  # the contracted feature feeds the classifier: E and C fold into the deployed head
        net.set_head_transform(_norm_head_transform(feature_loss, s_shapes, student, s_layers))
    weights = spec.weights()
    if weight is not None:
        weights[method] = float(weight)
    loss = MethodLoss(weights, temperature=ctx.temperature, multi_label=ctx.multi_label, feature_loss=feature_loss,
                      feature_term=method, feature_inputs="pooled" if pooled else "layers", needs_index=pooled)  # fmt: skip
    info = dict(teacher_layers=t_layers, student_layers=s_layers, teacher_shapes=t_shapes, student_shapes=s_shapes)
    return Method(method, net, loss, dict(weights), sample_indices=pooled, info=info)


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


def _norm(spec: MethodSpec, ctx: MethodContext, logit_standardisation: float | None, **feature: Any) -> Method:
    """NORM: the feature method plus the authors' logit standardisation (an option of NORM's alone). NORM's feature
    transform is the authors' ``conv1x1 + BN`` with a residual (``loss_options: {'feature_transform': 'plain'}``:
    two linear layers); ``logit_standardisation`` (default 2.5, None: off) scales the standardised logits that CE
    reads, on single-label data with >= 3 classes."""
    method = _feature(spec, ctx, **feature)
    if logit_standardisation is not None and (ctx.multi_label or ctx.num_classes < 3):
        # two standardised logits are +-1 whatever the network does (and sigmoid outputs are not a distribution):
        # CE would carry no gradient, so the authors' standardisation is left out, said in the log and the info
        logging.getLogger(__name__).warning(
            "norm: logit standardisation needs one label among >= 3 classes (got %s); training on the logits "
            "as they are (logit_standardisation=None).",
            "multi-label data" if ctx.multi_label else f"{ctx.num_classes} classes",
        )
        logit_standardisation = None
    method.loss.logit_standardisation = logit_standardisation
    method.info["logit_standardisation"] = logit_standardisation
    method.info["feature_transform"] = method.loss.feature_loss.ft.kind
    return method


def _register_feature(name: str, layers: str, weight: float, doc: str, builder=_feature, options=()) -> None:
    """Register feature method ``name``: CE (weight 1) plus its term at ``weight``, distilling ``layers``."""
    METHODS.register(name, builder, reference_layers=layers, default_weights={"ce_student": 1.0, name: weight},
                     options=FEATURE_OPTIONS + tuple(options), doc=doc)  # fmt: skip


# the default weights are RepDistiller's ``-b`` (AT's beta=1000 and MGD's alpha are already inside the losses)
_register_feature("hint", "middle", 100.0, "FitNets' hint from the frozen teacher at the second stage's output.")
_register_feature("at", "stages", 1.0, "Attention transfer at the ends of the last four stages.")
_register_feature("vid", "stages", 1.0, "Variational information distillation at the ends of the last four stages.")
_register_feature("crd", "pooled", 0.8, "Contrastive representation distillation of the pooled vectors, negatives "
                  "from other classes (reads each sample's dataset index).")  # fmt: skip
_register_feature("semckd", "stages", 400.0, "SemCKD's cross-layer attention over every stage.")
_register_feature("mgd", "last", 1.0, "Masked generative distillation of the last map.")
_register_feature("norm", "last", 1.0, _norm.__doc__, builder=_norm, options=(
    Option("logit_standardisation", NORM_LOGIT_STANDARDISATION, "scale of the standardised logits CE reads (None: "
           "off)"),))  # fmt: skip

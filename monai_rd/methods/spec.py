"""One registration per method: :class:`MethodSpec` (what a method is) and :class:`MethodRegistry` (name -> spec).

As timm's ``register_model`` keeps each model's entry point and its metadata in one place, ``@METHODS.register``
keeps everything the rest of the package asks about a method on its builder: whether it uses the teacher (and
whether a feature cache can stand in for it), what its ``model.pt`` is, whether it trains a stage 1, the layers it
distils, its default loss weights and its options, each with a default and a check. The tables earlier versions
kept beside the builders (``TEACHERLESS_METHODS``, ``DEPLOYABLES``, ``FEATURE_KD_WEIGHTS``, ``REFERENCE_LAYERS``)
are views computed from the registry.

The arguments every method receives (the networks, the task, the data) are a :class:`MethodContext`, written once;
a method's own arguments are its :class:`Option`\\ s. Options marked ``bundle_arg`` (RD's ``reprogrammer_budget``,
``teacher_warmup`` ...) are bundle ids of their own that a bundle passes to every method: the methods that declare
them read them, the others ignore them, and they are not ``method_options`` keys. Any other argument a method does
not declare is refused, naming it and listing what the method takes.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field, fields
from typing import Any

import torch.nn as nn

__all__ = [
    "Method",
    "Stage",
    "Option",
    "MethodContext",
    "MethodSpec",
    "MethodRegistry",
    "RegistryView",
    "RegistrySetView",
    "STAGE1",
]


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


@dataclass(frozen=True)
class MethodContext:
    """What every method is built from: the networks, the task and the training data (a bundle's shared ids).

    Attributes:
        teacher: the frozen teacher (``None`` for ``student``, or with a feature cache).
        student: the deployable :class:`monai_rd.networks.StudentClassifier`.
        num_classes: ``C``.
        image_size: side of the training images (feature shapes of tapped layers are probed at it).
        num_data: training-set size (CRD memory banks).
        train_labels: the training samples' labels, in dataset-index order (CRD draws negatives from other
            classes when each is one class index; multi-label or missing: from all other samples).
        batch_size: training batch size (SemCKD; the loader must drop the last incomplete batch).
        temperature: KD temperature.
        multi_label: BCE/sigmoid instead of CE/softmax.
        teacher_feature_shape: cached teacher feature shape when ``teacher`` is None (feature cache).
    """

    teacher: nn.Module | None
    student: nn.Module
    num_classes: int
    image_size: int = 224
    num_data: int | None = None
    train_labels: Sequence | None = None
    batch_size: int | None = None
    temperature: float = 4.0
    multi_label: bool = False
    teacher_feature_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.teacher_feature_shape is not None:
            object.__setattr__(self, "teacher_feature_shape", tuple(self.teacher_feature_shape))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Option:
    """One argument a method takes beyond its :class:`MethodContext`.

    Attributes:
        name: the keyword (a ``method_options`` key unless ``bundle_arg``).
        default: its value when not given.
        doc: what it does (listed by ``docs/methods.md`` and the error for an unknown option).
        choices: the values it may take (``None``: any value ``check`` accepts).
        check: ``check(value)`` is true for a valid value (``None``: any value).
        expect: what ``check`` asks for, completing "``<name>`` ..., got <value>" in the error.
        bundle_arg: a bundle id of its own, which the bundle passes to every method (RD's ``reprogrammer_budget``,
            ``teacher_warmup`` ...): methods that do not declare it ignore it, and it is not a ``method_options`` key.
    """

    name: str
    default: Any = None
    doc: str = ""
    choices: tuple | None = None
    check: Callable[[Any], bool] | None = None
    expect: str = ""
    bundle_arg: bool = False

    def validate(self, method: str, value: Any) -> Any:
        """``value`` if it is valid for this option of ``method``, else a ``ValueError`` that says what is."""
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"method {method!r}: {self.name} is one of {self.choices}, got {value!r}.")
        if self.check is not None and not self.check(value):
            raise ValueError(f"method {method!r}: {self.name} {self.expect}, got {value!r}.")
        return value


#: what ``MethodSpec.stage1`` may say: the method trains a stage 1 never, always, or when an option asks for it
STAGE1 = ("never", "always", "optional")


@dataclass(frozen=True)
class MethodSpec:
    """Everything about one method, registered once with its builder (``@METHODS.register(...)``).

    Attributes:
        name: the method id (``--method``).
        builder: ``builder(spec, context, **options) -> Method``; ``options`` holds every one of :attr:`options`,
            given or defaulted, already checked.
        uses_teacher: whether it reads the teacher at all (``student`` does not: a bundle then builds none).
        teacher_cache: whether a feature cache (``teacher_feature_shape``) can stand in for the teacher network.
        deploy: ``deploy(student=, teacher=, num_classes=, teacher_weights=) -> nn.Module``, the architecture of
            its ``model.pt`` (``None``: the student classifier, as for every method but the teacher references).
        stage1: ``"never"``, ``"always"`` or ``"optional"`` (an option asks for it: RD's ``teacher_warmup``).
        reference_layers: the layers a feature method distils by default, as its reference code taps them
            (``"stages"``, ``"middle"``, ``"last"``), ``"pooled"`` for the penultimate vectors, ``None`` for none.
        default_weights: the main stage's loss weights when no option changes them.
        options: the :class:`Option`\\ s it takes.
        doc: one paragraph on what it is (the builder's docstring when not given).
    """

    name: str
    builder: Callable[..., Method]
    uses_teacher: bool = True
    teacher_cache: bool = False
    deploy: Callable[..., nn.Module] | None = None
    stage1: str = "never"
    reference_layers: str | None = None
    default_weights: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        if self.stage1 not in STAGE1:
            raise ValueError(f"method {self.name!r}: stage1 is one of {STAGE1}, got {self.stage1!r}.")
        names = [o.name for o in self.options]
        clash = sorted({n for n in names if names.count(n) > 1} | set(names) & set(MethodContext.field_names()))
        if clash:
            raise ValueError(f"method {self.name!r}: options {clash} are given twice or shadow a MethodContext field.")
        if not self.doc:
            object.__setattr__(self, "doc", " ".join((self.builder.__doc__ or "").split()))
        params = list(inspect.signature(self.builder).parameters.values())[2:]  # after (spec, ctx)
        takes = {p.name for p in params if p.kind != p.VAR_KEYWORD}
        if set(names) - takes and not any(p.kind == p.VAR_KEYWORD for p in params) or takes - set(names):
            raise TypeError(
                f"method {self.name!r}: its builder takes {sorted(takes)} after (spec, ctx), its options are "
                f"{sorted(names)}; they must match."
            )

    @property
    def deploys_student(self) -> bool:
        """Whether its ``model.pt`` is the student classifier."""
        return self.deploy is None

    def weights(self) -> dict:
        """A fresh copy of :attr:`default_weights` (schedules included), for the builder to change."""
        return copy.deepcopy(dict(self.default_weights))

    def method_options(self) -> list[str]:
        """The options a bundle's ``method_options`` may set (those without a bundle id of their own), sorted."""
        return sorted(o.name for o in self.options if not o.bundle_arg)

    def resolve(self, given: Mapping[str, Any], ignorable: Set[str] = frozenset()) -> dict[str, Any]:
        """Every option of this method, from ``given`` or its default, checked. Names in ``ignorable`` (other
        methods' bundle arguments) that this method does not take are dropped; any other unknown name is refused
        with a ``TypeError`` that names it and lists what the method takes."""
        own = {o.name: o for o in self.options}
        unknown = sorted(k for k in given if k not in own and k not in ignorable)
        if unknown:
            takes = self.method_options()
            hints = [m for k in unknown for m in difflib.get_close_matches(k, list(own), n=1)]
            bundle = sorted(o.name for o in self.options if o.bundle_arg)
            raise TypeError(
                f"method {self.name!r} has no option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                + (f" (did you mean {', '.join(map(repr, hints))}?)" if hints else "")
                + f"; its method_options are {takes or 'none'}"
                + (f", and it reads the bundle arguments {bundle}" if bundle else "")
                + " (check method_options in the bundle)."
            )
        return {
            name: opt.validate(self.name, given[name]) if name in given else opt.default for name, opt in own.items()
        }


class MethodRegistry:
    """Method id -> :class:`MethodSpec`, in registration order. ``register`` is a decorator::

    @METHODS.register("kd", teacher_cache=True, stage1="always", default_weights={"ce_student": 0.1, "kd": 0.9},
                      options=(Option("kd_weight", 0.9), Option("ce_weight", 0.1)))
    def _kd(spec, ctx, kd_weight, ce_weight) -> Method: ...
    """

    def __init__(self) -> None:
        self._specs: dict[str, MethodSpec] = {}

    def register(self, name: str, builder: Callable[..., Method] | None = None, **metadata: Any):
        """Register ``builder`` as method ``name`` with the :class:`MethodSpec` fields in ``metadata``; usable as a
        decorator (the builder is returned unchanged). A name is registered once."""

        def _add(fn: Callable[..., Method]) -> Callable[..., Method]:
            if name in self._specs:
                raise KeyError(f"method {name!r} is already registered.")
            self._specs[name] = MethodSpec(name, fn, **metadata)
            return fn

        return _add if builder is None else _add(builder)

    def __getitem__(self, name: str) -> MethodSpec:
        if name not in self._specs:
            raise KeyError(f"Unknown method {name!r}. Available: {', '.join(self.names())}.")
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        """Registered method ids, sorted."""
        return sorted(self._specs)

    def specs(self) -> list[MethodSpec]:
        return list(self._specs.values())

    def bundle_args(self) -> frozenset[str]:
        """Every method's bundle arguments (:attr:`Option.bundle_arg`): a bundle passes them all to each method."""
        return frozenset(o.name for s in self._specs.values() for o in s.options if o.bundle_arg)


class RegistryView(Mapping):
    """A read-only mapping computed from the registry on each access (a view, never a second home of a fact)."""

    def __init__(self, compute: Callable[[], Mapping], doc: str = "") -> None:
        self._compute = compute
        self.__doc__ = doc

    def __getitem__(self, key):
        return self._compute()[key]

    def __iter__(self):
        return iter(self._compute())

    def __len__(self) -> int:
        return len(self._compute())

    def __repr__(self) -> str:
        return repr(dict(self._compute()))


class RegistrySetView(Set):
    """A read-only set computed from the registry on each access (``TEACHERLESS_METHODS``)."""

    def __init__(self, compute: Callable[[], Set], doc: str = "") -> None:
        self._compute = compute
        self.__doc__ = doc

    def __contains__(self, item) -> bool:
        return item in self._compute()

    def __iter__(self):
        return iter(self._compute())

    def __len__(self) -> int:
        return len(self._compute())

    def __repr__(self) -> str:
        return f"frozenset({sorted(self._compute())!r})"

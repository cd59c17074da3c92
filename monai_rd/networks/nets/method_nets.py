"""Networks of the comparison methods: each returns the dict the RD engines read (``z_S``, ``f_S``, ``z_T``, ``f_T``).

:class:`monai_rd.engines.RDTrainer` and :class:`monai_rd.engines.RDEvaluator` train and score any network whose
``forward(x, teacher_features=None)`` returns ``{"z_S": [B, C], "f_S": [B, d_S], "z_T": [B, C], "f_T": [B, d_T]}``
(``pred`` = ``z_S``, the model that is scored and saved) and which has ``deployable()``. The networks here add
the teacher-side classifiers (linear probe, reprogrammer + head, fine-tuned/LoRA/prompted teacher) and the
feature taps of the feature-distillation baselines.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_rd.networks.blocks.reprogrammer import Reprogrammer
from monai_rd.networks.nets.students import StudentClassifier

if TYPE_CHECKING:
    from monai_rd.networks.nets.rdnet import RDTeacherBranch

__all__ = [
    "pool_features",
    "TunedTeacher",
    "TeacherClassifier",
    "FrozenBranch",
    "ReferenceNet",
    "StudentNet",
    "DistillNet",
    "FoldedHeadStudent",
    "LayerTaps",
    "default_feature_layer",
    "default_feature_layers",
    "tap_layout",
    "to_nchw",
]

_NOT_FEATURE_LAYERS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool2d, nn.Identity, nn.Flatten,
                       nn.Dropout)  # fmt: skip


def pool_features(t: torch.Tensor) -> torch.Tensor:
    """Teacher output -> a vector per sample: ``[B, D]`` as is, ``[B, D, h, w]`` averaged over space."""
    if t.ndim == 2:
        return t
    if t.ndim == 4:
        return t.float().mean(dim=(2, 3))
    raise ValueError(f"Teacher features must be [B, D] or [B, D, h, w], got shape {tuple(t.shape)}.")


class TunedTeacher(nn.Module):
    """A trainable copy of a :class:`monai_rd.networks.FrozenTeacher` (the original stays untouched).

    It keeps the teacher's own preprocessing and runs with autograd. Which parameters train is set by the caller
    (all for fine-tuning, only LoRA matrices or prompts for PEFT).

    Args:
        teacher: the frozen teacher to copy.
        train_mode: put the backbone in training mode when the trainer does (fine-tuning: BatchNorm statistics
            and dropout follow training); ``False`` keeps it in eval mode (PEFT: the backbone's statistics stay).

    Shapes: ``[B, 3, H, W]`` in ``[0, 1]`` -> the teacher's features (``[B, D]`` or ``[B, D, h, w]``).
    """

    def __init__(self, teacher: nn.Module, train_mode: bool = True) -> None:
        super().__init__()
        if not any(True for _ in teacher.parameters()):
            raise ValueError(
                f"Teacher {getattr(teacher, 'name', type(teacher).__name__)!r} has no parameters (e.g. an ONNX "
                "black box), so it cannot be fine-tuned or adapted; use a method that keeps it frozen."
            )
        self.teacher = copy.deepcopy(teacher)
        for m in self.teacher.modules():  # feature taps of other methods on the shared teacher stay there
            m._forward_hooks.clear()
        self.name = getattr(teacher, "name", "")
        self.feature_shape = tuple(teacher.feature_shape)
        self.train_mode = train_mode

    def train(self, mode: bool = True) -> TunedTeacher:
        super().train(mode)  # FrozenTeacher.train keeps everything below in eval mode ...
        if self.train_mode and mode:
            nn.Module.train(self.teacher.backbone, True)  # ... except the backbone being fine-tuned
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher.backbone(self.teacher.preprocess(x))


class TeacherClassifier(nn.Module):
    """A classifier on teacher features: ``head(g(T(x)))`` (``g`` a :class:`Reprogrammer`) or ``head(pool(T(x)))``.

    Args:
        encoder: the teacher (frozen or :class:`TunedTeacher`), or ``None`` when features always come from a
            cache (``teacher_features``).
        num_classes: ``C``.
        feature_shape: per-sample teacher feature shape; default ``encoder.feature_shape``.
        reprogrammer_dim: if given, ``g`` maps teacher features to this width (direct reprogramming);
            otherwise the head is a linear probe on pooled teacher features.
        reprogrammer_blocks: residual blocks of ``g``.
        reprogrammer_width: bottleneck width of ``g`` (:class:`Reprogrammer`); ``None``: full width.

    Shapes: ``features``: ``[B, 3, H, W]`` -> ``[B, d]``; ``forward``: -> logits ``[B, C]``.
    """

    def __init__(
        self,
        encoder: nn.Module | None,
        num_classes: int,
        feature_shape: Sequence[int] | None = None,
        reprogrammer_dim: int | None = None,
        reprogrammer_blocks: int = 2,
        reprogrammer_width: int | None = None,
    ) -> None:
        super().__init__()
        if encoder is None and feature_shape is None:
            raise ValueError("TeacherClassifier needs a teacher or the shape of its cached features.")
        self.encoder = encoder
        shape = tuple(feature_shape) if feature_shape is not None else tuple(encoder.feature_shape)  # type: ignore
        self.feature_shape = shape
        if reprogrammer_dim is not None:
            self.reprogrammer: nn.Module | None = Reprogrammer(
                shape, reprogrammer_dim, num_blocks=reprogrammer_blocks, width=reprogrammer_width
            )
            width = reprogrammer_dim
        else:
            self.reprogrammer = None
            width = shape[0]
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> torch.Tensor:
        if teacher_features is None:
            if self.encoder is None:
                raise ValueError("This teacher classifier was built without a teacher: pass teacher_features.")
            teacher_features = self.encoder(x)
        t = teacher_features.float()
        return self.reprogrammer(t) if self.reprogrammer is not None else pool_features(t)

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, teacher_features))


class FrozenBranch(nn.Module):
    """Freezes a trained teacher branch for distillation: eval mode always, no autograd, no trainable parameters
    visible to the optimiser of the distillation stage (it is trained, if at all, by stage 1 directly)."""

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch

    def train(self, mode: bool = True) -> FrozenBranch:
        return super().train(False)

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, teacher_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(z_T [B, C], f_T [B, d])``."""
        f = self.branch.features(x, teacher_features)
        return self.branch.head(f), f


class ReferenceNet(nn.Module):
    """Trains a :class:`TeacherClassifier` alone (``teacher_linear``, ``teacher_finetune``, and every stage 1;
    RD's teacher-branch warm-up trains an :class:`~monai_rd.networks.RDTeacherBranch`, which has the same interface).

    Its prediction ``z_S`` is the teacher classifier's logits; ``z_T``/``f_T`` repeat ``z_S``/``f_S`` so the RD
    evaluator and its CKA monitor run unchanged (the reported CKA is then 1 by construction). ``deployable()``
    is the teacher classifier itself (teacher + head): that is what a reference method saves as ``model.pt``.
    """

    def __init__(self, classifier: TeacherClassifier | RDTeacherBranch) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        f = self.classifier.features(x, teacher_features)
        z = self.classifier.head(f)
        return {"z_S": z, "f_S": f, "z_T": z, "f_T": f}

    def deployable(self) -> TeacherClassifier:
        return self.classifier


class StudentNet(nn.Module):
    """The student alone (``student`` method). ``z_T``/``f_T`` repeat the student's (no teacher exists)."""

    def __init__(self, student: StudentClassifier) -> None:
        super().__init__()
        self.student = student

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        f = self.student.features(x)
        z = self.student.head(f)
        return {"z_S": z, "f_S": f, "z_T": z, "f_T": f}

    def deployable(self) -> StudentClassifier:
        return self.student


def _module(root: nn.Module, name: str, owner: str) -> nn.Module:
    try:
        return root.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in root.named_modules() if n][-12:]
        raise ValueError(f"The {owner} has no layer {name!r}; its last layers are {names}.") from None


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU when it has none)."""
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def probe_forward(root: nn.Module, image_size: int, hooks: Sequence = ()) -> None:
    """One no-grad, eval-mode forward of a zero image ``[1, 3, image_size, image_size]`` through ``root``.

    The training mode is restored and the forward ``hooks`` (handles) are removed afterwards, whatever happens.
    """
    was_training = root.training
    root.eval()
    try:
        with torch.no_grad():
            root(torch.zeros(1, 3, image_size, image_size, device=module_device(root)))
    finally:
        root.train(was_training)
        for h in hooks:
            h.remove()


def default_feature_layer(root: nn.Module, image_size: int, owner: str = "network") -> str:
    """Name of the last layer (in execution order) whose output is a feature map ``[B, C, H, W]`` or tokens
    ``[B, N, D]``, found by one forward pass of a ``[1, 3, image_size, image_size]`` zero image in eval mode.

    Pooling, dropout, flatten and identity layers are skipped, so a ResNet gives ``...layer4`` and a timm ViT its
    final ``...norm`` tokens.
    """
    finished: list[str] = []

    def record(name: str):
        def hook(module, inputs, output) -> None:
            if torch.is_tensor(output) and output.ndim in (3, 4):
                finished.append(name)

        return hook

    handles = [
        mod.register_forward_hook(record(name))
        for name, mod in root.named_modules()
        if name and not isinstance(mod, _NOT_FEATURE_LAYERS)
    ]
    probe_forward(root, image_size, handles)
    if not finished:
        raise ValueError(f"The {owner} has no layer giving a [B, C, H, W] map or [B, N, D] tokens; name one.")
    return finished[-1]


def _sam_vit(module: nn.Module) -> bool:
    """A timm ``VisionTransformerSAM`` (SAM / LVM-Med image encoder): its blocks emit ``[B, h, w, C]``."""
    return type(module).__name__ == "VisionTransformerSAM"


def _token_vit(module: nn.Module) -> bool:
    """A timm ``VisionTransformer``-like module: tokens ``[B, P + h * w, C]`` with ``P`` prefix tokens."""
    return all(hasattr(module, a) for a in ("patch_embed", "blocks", "num_prefix_tokens")) and not _sam_vit(module)


def tap_layout(root: nn.Module, name: str) -> tuple[str, int]:
    """How the output of layer ``name`` of ``root`` is laid out: ``("nchw", 0)``, ``("nhwc", 0)`` (blocks of a SAM
    ViT such as LVM-Med's, ``[B, h, w, C]``) or ``("tokens", P)`` (a timm ViT, ``[B, P + h * w, C]``).

    The innermost ViT that contains ``name`` decides. Inside a SAM ViT only whole stages can be tapped
    (``patch_embed``, ``norm_pre``, ``blocks``, ``blocks.<i>``): the layers inside a windowed block see windows,
    not the image; the conv ``neck`` is channels-first.
    """
    parts = name.split(".") if name else []
    for cut in range(len(parts), -1, -1):
        prefix = ".".join(parts[:cut])
        module = root.get_submodule(prefix) if prefix else root
        rest = parts[cut:]
        if _sam_vit(module):
            if rest and rest[0] == "neck":
                return ("nchw", 0)
            if (
                not rest
                or rest[0] in ("patch_embed", "norm_pre", "pos_drop", "patch_drop")
                or (rest[0] == "blocks" and len(rest) <= 2)
            ):
                return ("nhwc", 0)
            raise ValueError(
                f"Layer {name!r} lies inside a windowed block of a SAM ViT, where outputs are windows, not the "
                "image; tap a whole block ('...blocks.<i>') instead."
            )
        if _token_vit(module):
            return ("tokens", int(module.num_prefix_tokens))
    return ("nchw", 0)


def to_nchw(x: torch.Tensor, layout: tuple[str, int], name: str = "feature") -> torch.Tensor:
    """A tapped output in ``layout`` (see :func:`tap_layout`) -> ``[B, C, H, W]`` (vectors ``[B, D]`` pass as is).

    ``[B, h, w, C]`` is permuted; tokens ``[B, P + h * w, C]`` lose their ``P`` prefix tokens and become a square
    ``[B, C, h, w]`` map.
    """
    kind, prefix = layout
    if kind == "nhwc" and x.ndim == 4:
        return x.permute(0, 3, 1, 2)
    if kind == "tokens" and x.ndim == 3:
        b, n, c = x.shape
        side = math.isqrt(n - prefix)
        if side * side != n - prefix:
            raise ValueError(f"{name}: {n} tokens less {prefix} prefix tokens do not form a square grid.")
        return x[:, prefix:].transpose(1, 2).reshape(b, c, side, side)
    return x


class LayerTaps:
    """Forward hooks that keep the outputs of named layers of ``root`` from its latest forward pass, each brought
    to ``[B, C, H, W]`` according to the network's own layout (:func:`tap_layout`, :func:`to_nchw`)."""

    def __init__(self, root: nn.Module, names: Sequence[str], owner: str) -> None:
        self.names = list(names)
        self.outputs: dict[str, torch.Tensor] = {}
        self.layouts = {name: tap_layout(root, name) for name in self.names}
        self.root = root
        for name in self.names:
            _module(root, name, owner).register_forward_hook(self._keep(name))

    def _keep(self, name: str):
        def hook(module, inputs, output):
            self.outputs[name] = to_nchw(output, self.layouts[name], name)

        return hook

    def pop(self) -> list[torch.Tensor]:
        missing = [n for n in self.names if n not in self.outputs]
        if missing:
            raise RuntimeError(f"Layers {missing} did not run in the forward pass.")
        out = [self.outputs[n] for n in self.names]
        self.outputs.clear()
        return out

    def shapes(self, image_size: int) -> list[tuple[int, ...]]:
        """Per-sample shapes ``(C, H, W)`` of the taps for a ``[1, 3, image_size, image_size]`` input."""
        probe_forward(self.root, image_size)
        return [tuple(t.shape[1:]) for t in self.pop()]


def default_feature_layers(root: nn.Module, image_size: int, count: int, owner: str = "network") -> list[str]:
    """``count`` layers spread over the depth of ``root`` for multi-layer distillation (SemCKD).

    A network with transformer ``blocks`` (timm ViTs, SAM) gives evenly spaced blocks ending with the last one
    (``blocks.2, 5, 8, 11`` for 12 blocks and ``count=4``); a CNN gives the ends of its last ``count`` stages (the
    outermost layer at each output resolution before the maps shrink), or all its stages if it has fewer.
    """
    for name, module in root.named_modules():
        if (_sam_vit(module) or _token_vit(module)) and isinstance(getattr(module, "blocks", None), nn.Sequential):
            n = len(module.blocks)
            picks = sorted({n - 1 - round(i * n / count) for i in range(count) if n - 1 - round(i * n / count) >= 0})
            return [f"{name}.blocks.{i}" if name else f"blocks.{i}" for i in picks]
    finished: list[tuple[str, tuple]] = []

    def record(name: str):
        def hook(module, inputs, output) -> None:
            if torch.is_tensor(output) and output.ndim == 4:
                finished.append((name, tuple(output.shape[2:])))

        return hook

    handles = [mod.register_forward_hook(record(name)) for name, mod in root.named_modules()
               if name and not isinstance(mod, _NOT_FEATURE_LAYERS)]  # fmt: skip
    probe_forward(root, image_size, handles)
    stages = []
    for size in dict.fromkeys(size for _, size in finished):  # resolutions in order of first appearance
        area = size[0] * size[1]
        if area == 1 and size != finished[-1][1]:
            continue  # [B, C, 1, 1] squeeze-excitation gates inside a stage are not a stage of their own
        # [B, C, 1, 1] gates (squeeze-excitation convs) do not end a stage
        cutoff = next((i for i, (_, s) in enumerate(finished) if 1 < s[0] * s[1] < area), len(finished))
        # the stage's end: the outermost layer at this resolution that finished before any smaller map
        # (so a ResNet gives "layer1", not the first 1x1 conv of "layer2.0", which runs at layer1's size)
        candidates = [(-n.count("."), i, n) for i, (n, s) in enumerate(finished[:cutoff]) if s == size]
        if candidates:
            stages.append(max(candidates)[1:])
    stages = [name for _, name in sorted(stages)]
    return stages[-count:]


class FoldedHeadStudent(nn.Module):
    """A student whose last map passes through a feature transform before its head, deployed with it folded in.

    NORM's feature transform ``FT`` (:class:`monai_rd.networks.blocks.FeatureTransform`) acts on the student's last
    map during training and its output feeds the classifier: ``z = h(pool(FT(F_S)))``. In eval mode ``FT`` is one
    affine map per position (1x1 convolutions, BatchNorm with running statistics, a residual), and global average
    pooling commutes with it, so ``z = h(W pool(F_S) + b) = (W_h W) f_S + (W_h b + b_h)``: this module computes the
    eval-mode logits with that folded head, so what is saved is a plain :class:`StudentClassifier`:

    * :meth:`state_dict` gives the student's keys with the folded ``head.weight``/``head.bias``;
    * a copy (``copy.deepcopy``, as the report and registry handlers make) *is* that plain student;
    * :meth:`load_state_dict` of such a state loads the student and resets the transform to the identity.

    Args:
        student: the student; its ``head`` is ``nn.Linear(d_S, C)``.
        transform: has ``forward(map) -> (map, expanded)``, ``affine() -> (W, b)`` and ``reset_to_identity()``;
            owned (and trained) elsewhere, e.g. by the NORM loss.

    Shapes: ``x`` ``[B, C_in, H, W]`` -> logits ``[B, C]``; :meth:`logits_from_map`: ``[B, d_S, h, w]`` -> ``[B, C]``.
    """

    def __init__(self, student: StudentClassifier, transform: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.transform = transform

    def folded_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [C, d_S], b [C])`` of ``head(FT(f_S))`` in eval mode."""
        w, b = self.transform.affine()
        head = self.student.head
        return head.weight @ w, head.weight @ b + head.bias

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``f_S`` ``[B, d_S]`` -> ``[B, C]`` through the folded head (eval mode)."""
        return F.linear(features, *self.folded_head())

    def logits_from_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The student's last map ``[B, d_S, h, w]`` -> ``h(pool(FT(map)))`` ``[B, C]`` (training: batch statistics)."""
        out, _ = self.transform(feature_map)
        return self.student.head(out.flatten(2).mean(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.student.features(x))

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        state = self.student.state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        with torch.no_grad():
            w, b = self.folded_head()
        state[prefix + "head.weight"], state[prefix + "head.bias"] = w.detach().clone(), b.detach().clone()
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = self.student.load_state_dict(state_dict, strict=strict, assign=assign)
        self.transform.reset_to_identity()  # the loaded head is already folded
        return result

    def __deepcopy__(self, memo):
        plain = copy.deepcopy(self.student, memo)
        with torch.no_grad():
            w, b = self.folded_head()
            plain.head.weight.copy_(w)
            plain.head.bias.copy_(b)
        return plain


class DistillNet(nn.Module):
    """A student distilled from a teacher that does not change during distillation.

    Args:
        student: the deployable student.
        teacher: a frozen teacher (feature methods), or ``None`` when ``branch`` is given.
        branch: a teacher classifier trained in stage 1 (probe, ``g + h``, LoRA/VPT teacher + head); it is wrapped
            in :class:`FrozenBranch` here.
        teacher_layers, student_layers: layers whose outputs are returned as ``feat_T``/``feat_S`` lists (names
            relative to ``teacher``/``student``).
        head_transform: a transform of the student's last (tapped) map feeding its head during training (NORM's
            feature transform, owned by its loss); deployed folded into the head (:class:`FoldedHeadStudent`).

    Returns ``{"z_S", "f_S", "z_T", "f_T", "feat_S", "feat_T"}``: ``z_T`` is the branch's logits, or ``z_S`` again
    when the teacher has no head (feature methods; no loss reads it then); ``f_T`` the branch's features or the
    teacher's pooled output ``[B, D_T]``.
    """

    def __init__(
        self,
        student: StudentClassifier,
        teacher: nn.Module | None = None,
        branch: TeacherClassifier | None = None,
        teacher_layers: Sequence[str] = (),
        student_layers: Sequence[str] = (),
        head_transform: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if (teacher is None) == (branch is None):
            raise ValueError("DistillNet takes either a frozen teacher or a trained teacher branch.")
        self.student = student
        self.teacher = teacher
        self.branch = FrozenBranch(branch) if branch is not None else None
        if teacher_layers and teacher is None:
            raise ValueError("Intermediate teacher layers are tapped on a frozen teacher, not on a trained branch.")
        self.teacher_taps = LayerTaps(teacher, teacher_layers, "teacher") if teacher_layers else None  # type: ignore
        self.student_taps = LayerTaps(student, student_layers, "student") if student_layers else None
        self.set_head_transform(head_transform)

    def forward(self, x: torch.Tensor, teacher_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if teacher_features is not None and self.teacher_taps is not None:
            raise ValueError("Feature distillation reads intermediate teacher layers; a feature cache cannot serve it.")
        f_s = self.student.features(x)
        feat_s = self.student_taps.pop() if self.student_taps is not None else None
        if not self._folded:
            z_s = self.student.head(f_s)
        elif self.training:  # the transform reads the whole map (BatchNorm's batch statistics)
            z_s = self._folded[0].logits_from_map(feat_s[-1])  # type: ignore[index]
        else:
            z_s = self._folded[0].logits(f_s)
        out: dict = {"z_S": z_s, "f_S": f_s}
        if self.branch is not None:
            out["z_T"], out["f_T"] = self.branch(x, teacher_features)
        else:
            with torch.no_grad():
                t = self.teacher(x) if teacher_features is None else teacher_features  # type: ignore[misc]
            out["z_T"], out["f_T"] = z_s, pool_features(t.float())
        if feat_s is not None:
            out["feat_S"] = feat_s
        if self.teacher_taps is not None:
            out["feat_T"] = [t.detach() for t in self.teacher_taps.pop()]
        return out

    def set_head_transform(self, transform: nn.Module | None) -> None:
        """Put ``transform`` (see ``head_transform``) between the student's last map and its head; None: no change.

        For a method whose transform is built from the taps' shapes, after this network exists (NORM)."""
        if transform is not None and self.student_taps is None:
            raise ValueError("A head transform reads the student's last map: tap it (student_layers).")
        # kept out of this module's children: its state dict is the folded student's, not a second copy of ours
        self._folded = (FoldedHeadStudent(self.student, transform),) if transform is not None else ()

    def deployable(self) -> nn.Module:
        """The student (a :class:`FoldedHeadStudent` with ``head_transform``: saved and copied as a plain student)."""
        return self._folded[0] if self._folded else self.student

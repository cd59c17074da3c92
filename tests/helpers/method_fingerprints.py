"""What every registered method builds, as a fingerprint: modules, parameters, weights, options, loss values.

``tests/helpers/method_fingerprints.json`` holds the fingerprints recorded from the method registry before it became one
spec per method (issue 27, item 3); ``tests/methods/test_methods_spec.py`` rebuilds every case and compares, so a change to
the registry that changes what a method builds, trains, deploys or computes fails by name. Regenerate only for an
intended change of behaviour::

    PYTHONPATH=. python tests/helpers/method_fingerprints.py   # rewrites tests/helpers/method_fingerprints.json
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
import warnings

import torch
from collections.abc import Mapping

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "method_fingerprints.json")
IMAGE, BATCH, CLASSES = 32, 4, 3
VIT_METHODS = ("lora_kd", "vpt_kd")

#: (case id, method, build_method keyword arguments); every registered method at its defaults, then variants
VARIANTS = [
    ("kd_cache", "kd", {"teacher": None, "teacher_feature_shape": (512,)}),
    ("kd_weights", "kd", {"ce_weight": 1.0, "kd_weight": 1.0, "temperature": 2.0}),
    ("kd_multi_label", "kd", {"multi_label": True}),
    # RD's bundle-wide arguments reach every method's build_method; the others ignore them
    (
        "kd_ignores_rd_args",
        "kd",
        {
            "teacher_warmup": True,
            "reprogrammer_budget": None,
            "detach_teacher": True,
            "reprogrammer_lr_scale": 2.0,
            "teacher_trains_head": False,
            "reprogrammer_blocks": 1,
            "loss_weights": {"ce_student": 1.0, "kd": 1.0, "cka": 1.0, "ce_teacher": 1.0},
        },
    ),
    ("hint_ignores_rd_args", "hint", {"teacher_warmup": True, "detach_teacher": True, "reprogrammer_lr_scale": 2.0}),
    ("rd_direct", "rd", {"co_training": False}),
    ("rd_direct_no_cka", "rd", {"co_training": False, "use_cka": False, "reprogrammer_lr_scale": 3.0}),
    ("rd_warmup", "rd", {"teacher_warmup": True, "teacher_trains_head": False}),
    ("rd_lr_scale", "rd", {"reprogrammer_lr_scale": 0.5}),
    ("rd_full_width", "rd", {"reprogrammer_budget": None}),
    ("rd_blocks", "rd", {"reprogrammer_blocks": 1, "reprogrammer_budget": 0.05}),
    ("rd_ablate", "rd", {"use_kd": False, "use_cka": False}),
    ("rd_detach", "rd", {"detach_teacher": True, "cka_memory": 8}),
    ("rd_gate", "rd", {"teacher_gate": True}),
    ("rd_gate_auto", "rd", {"teacher_gate": "auto"}),
    ("rd_gate_auto_multi_label", "rd", {"teacher_gate": "auto", "multi_label": True}),
    ("rd_gate_auto_direct", "rd", {"teacher_gate": "auto", "co_training": False}),
    ("rd_multi_label", "rd", {"multi_label": True, "temperature": 2.0}),
    (
        "rd_schedule",
        "rd",
        {
            "loss_weights": {
                "ce_teacher": 1.0,
                "ce_student": 1.0,
                "kd": {"start": 1.0, "end": 0.0, "schedule": "linear"},
                "cka": 0.5,
            }
        },
    ),
    ("rd_cache", "rd", {"teacher": None, "teacher_feature_shape": (512,)}),
    ("direct_cache", "direct_reprogramming", {"teacher": None, "teacher_feature_shape": (512,)}),
    (
        "direct_weights",
        "direct_reprogramming",
        {
            "loss_weights": {"ce_teacher": 1.0, "ce_student": 1.0, "kd": 0.5},
            "reprogrammer_budget": None,
            "reprogrammer_blocks": 1,
        },
    ),
    ("hint_last", "hint", {"feature_layers": "last", "weight": 50.0}),
    ("hint_given", "hint", {"teacher_layers": "backbone.model.layer3", "student_layers": ["backbone.model.layer3"]}),
    ("at_last", "at", {"feature_layers": "last"}),
    ("semckd_last", "semckd", {"feature_layers": "last", "temperature": 2.0}),
    ("crd_labels", "crd", {"train_labels": [0, 1, 2, 0, 1, 2, 0, 1]}),
    ("crd_multi_label", "crd", {"multi_label": True, "train_labels": [[1, 0, 1]] * 8}),
    ("vid_options", "vid", {"loss_options": {"init_var": 4.0}}),
    ("mgd_weight", "mgd", {"weight": 2.0}),
    ("norm_two_classes", "norm", {"num_classes": 2}),
    ("norm_off", "norm", {"logit_standardisation": None}),
    ("norm_plain", "norm", {"loss_options": {"feature_transform": "plain"}}),
    ("norm_multi_label", "norm", {"multi_label": True}),
    ("lora_options", "lora_kd", {"lora_rank": 2, "lora_alpha": 4.0, "kd_weight": 0.5}),
    ("vpt_options", "vpt_kd", {"num_prompts": 3, "ce_weight": 1.0}),
    ("student_multi_label", "student", {"multi_label": True}),
]


def _shapes_digest(state: dict, values: bool = True) -> dict:
    """Entries, elements and a hash of the keys, shapes and dtypes of ``state``; ``values``: the sum of the absolute
    values of its floating-point tensors too (initial values: which modules were built, in which RNG order)."""
    lines = [f"{k}:{tuple(v.shape)}:{v.dtype}" for k, v in state.items()]
    digest = {
        "entries": len(lines),
        "numel": int(sum(v.numel() for v in state.values() if torch.is_tensor(v))),
        "keys_sha": hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16],
    }
    if values:
        tensors = [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
        digest["abs_sum"] = float(sum(float(torch.linalg.vector_norm(v, 1, dtype=torch.float64)) for v in tensors))
    return digest


def _params(params) -> list:
    return [len(params), int(sum(p.numel() for p in params))]


def _groups(groups) -> list:
    return [[len(g["params"]), int(sum(p.numel() for p in g["params"])), g["lr"]] for g in groups]


def _plain(value):
    """JSON-safe form of weights, info and loss attributes (tuples as lists, modules by class name)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value
    if torch.is_tensor(value):
        return [list(value.shape), float(value.double().sum())]
    return type(value).__name__


LOSS_ATTRS = ("weights", "temperature", "multi_label", "detach_teacher", "logit_standardisation", "cka_memory",
              "needs_index", "feature_term", "feature_inputs")  # fmt: skip


def _loss_terms(network, loss, seed: int, multi_label: bool, num_classes: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(BATCH, 3, IMAGE, IMAGE, generator=g)
    y = (
        (torch.rand(BATCH, num_classes, generator=g) < 0.5).float()
        if multi_label
        else torch.arange(BATCH) % num_classes
    )
    index = torch.arange(BATCH)
    kwargs = {}
    network.train()
    loss.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cached = _cached_shape(network)
        if cached is not None:
            kwargs["teacher_features"] = torch.randn(BATCH, *cached, generator=g)
        out = network(x, **kwargs)
        if getattr(loss, "needs_index", False):
            loss.index = index
        result = loss(out, y)
    return {k: float(v.detach()) for k, v in sorted(result.items()) if torch.is_tensor(v) and v.ndim == 0}


def _cached_shape(network):
    """The teacher-feature shape a cache-fed network reads (``None`` when it runs its teacher)."""
    return getattr(network, "fingerprint_cache_shape", None)


_STUDENTS: dict = {}


def _student(num_classes: int):
    """A seeded ResNet-18 student per class count, built once (cases copy it: building is the slow part)."""
    from monai_rd.networks import StudentClassifier

    if num_classes not in _STUDENTS:
        torch.manual_seed(1)
        _STUDENTS[num_classes] = StudentClassifier("resnet18", num_classes)
    return _STUDENTS[num_classes]


def fingerprint(case: str, method: str, kwargs: dict, teacher, vit) -> dict:
    """Build ``method`` with ``kwargs`` from seeded networks and describe everything it made."""
    from monai_rd.methods import build_method

    kwargs = dict(kwargs)
    num_classes = kwargs.pop("num_classes", CLASSES)
    if "teacher" in kwargs:
        t = kwargs.pop("teacher")
    elif method == "student":
        t = None
    else:
        t = copy.deepcopy(vit if method in VIT_METHODS else teacher)
    student = copy.deepcopy(_student(num_classes))
    kwargs.setdefault("image_size", IMAGE)
    kwargs.setdefault("num_data", 8)
    kwargs.setdefault("batch_size", BATCH)
    torch.manual_seed(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = build_method(method, t, student, num_classes, **kwargs)
    cache = tuple(kwargs["teacher_feature_shape"]) if t is None and kwargs.get("teacher_feature_shape") else None
    out = {
        "name": built.name,
        "network": type(built.network).__name__,
        "loss": type(built.loss).__name__,
        "network_state": _shapes_digest(built.network.state_dict()),
        "loss_state": _shapes_digest(built.loss.state_dict()),
        "parameters": _params(built.parameters()),
        "param_groups": _groups(built.param_groups(1.0)),
        "lr_scales": [s for _, s in built.lr_scales],
        "loss_weights": _plain(built.loss_weights),
        "sample_indices": built.sample_indices,
        "info": _plain(built.info),
        "loss_attrs": {a: _plain(getattr(built.loss, a)) for a in LOSS_ATTRS if hasattr(built.loss, a)},
        "stage1": None,
    }
    multi_label = bool(kwargs.get("multi_label", False))
    built.network.fingerprint_cache_shape = cache
    out["terms"] = _loss_terms(built.network, built.loss, 3, multi_label, num_classes)
    if built.stage1 is not None:
        built.stage1.network.fingerprint_cache_shape = cache
        out["stage1"] = {
            "network": type(built.stage1.network).__name__,
            "loss": type(built.stage1.loss).__name__,
            "network_state": _shapes_digest(built.stage1.network.state_dict()),
            "parameters": _params(built.stage1_parameters()),
            "param_groups": _groups(built.stage1_param_groups(1.0)),
            "loss_weights": _plain(built.stage1.loss_weights),
            "frozen": built.stage1.frozen,
            "terms": _loss_terms(built.stage1.network, built.stage1.loss, 4, multi_label, num_classes),
        }
    return out


def metadata(name: str) -> dict:
    """What the registry says of ``name`` without building it, and the shape of its deployable ``model.pt``."""
    from monai_rd.methods import build_deployable, deploys_student, method_options, needs_teacher

    torch.manual_seed(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        deployable = build_deployable(
            name, "mobilenet_v3_small", "torchvision:mobilenet_v3_small", CLASSES, teacher_weights="random"
        )
    state = _shapes_digest(deployable.state_dict(), values=False)  # loaded from model.pt: initial values do not matter
    return {
        "needs_teacher": needs_teacher(name),
        "deploys_student": deploys_student(name),
        "method_options": list(method_options(name)),
        "deployable": type(deployable).__name__,
        "deployable_state": state,
    }


def networks():
    """The seeded teacher (ResNet-18) and ViT teacher every case copies."""
    from monai_rd.networks import build_teacher

    torch.manual_seed(0)
    teacher = build_teacher("torchvision:resnet18", "random")
    torch.manual_seed(0)
    vit = build_teacher("timm:vit_tiny_patch16_224", "random", input_size=IMAGE, img_size=IMAGE)
    return teacher, vit


def cases(names) -> list[tuple[str, str, dict]]:
    return [(m, m, {}) for m in sorted(names)] + VARIANTS


def record() -> dict:
    from monai_rd.methods import METHODS

    teacher, vit = networks()
    names = METHODS.names()
    return {
        "methods": {m: metadata(m) for m in sorted(names)},
        "cases": {c: fingerprint(c, m, kw, teacher, vit) for c, m, kw in cases(names)},
        "feature_kd_weights": _plain(__import__("monai_rd.methods", fromlist=["x"]).FEATURE_KD_WEIGHTS),
        "reference_layers": _plain(__import__("monai_rd.methods.registry", fromlist=["x"]).REFERENCE_LAYERS),
    }


def close(a, b, path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ (floats to a relative 1e-4), as readable paths.

    1e-4, not less: the loss terms run float32 convolutions whose CPU kernels differ between machines (1.3e-5 apart
    between two 2-core machines of this project); a method built differently moves them by far more."""
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, (int, float)):
        ok = math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = [f"{path}.{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            diffs += close(a[k], b[k], f"{path}.{k}")
        return diffs
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in close(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


if __name__ == "__main__":
    data = record()
    with open(GOLDEN, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {GOLDEN}: {len(data['cases'])} cases", file=sys.stderr)

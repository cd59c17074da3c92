"""Fail fast on a mistyped bundle override or a parameter of the wrong type, naming the key.

``python -m monai.bundle run ... --max_epoch 2`` silently adds a new id ``max_epoch`` and trains for the
default number of epochs; ``--batch_size eight`` fails deep inside the DataLoader. The bundles call
:func:`check_bundle_run` first in ``initialize`` so both stop at once with a message naming the key.
"""

from __future__ import annotations

import difflib
import logging
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "ConfigError",
    "EmptyEpochError",
    "check_run_params",
    "check_cli_overrides",
    "check_bundle_run",
    "check_epochs_run",
    "dropped_per_epoch",
    "parse_bool",
    "normalize_bool_ids",
    "start_run",
    "PARAM_CHECKS",
]

#: arguments of ``monai.bundle run`` itself, not config ids
RUN_ARGS = {"config_file", "meta_file", "logging_file", "run_id", "init_id", "final_id", "tracking", "args_file"}


class ConfigError(ValueError):
    """A bundle override or parameter that cannot be right; the message names the key."""


class EmptyEpochError(ConfigError):
    """A training or validation epoch would run zero iterations: the run would train or select nothing."""


def _int(lo: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= lo), f"an integer >= {lo}"


def _real(lo: float, hi: float | None = None, lo_open: bool = False) -> tuple[Callable[[Any], bool], str]:
    def ok(v):
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or v != v:
            return False
        return (v > lo if lo_open else v >= lo) and (hi is None or v < hi)

    return ok, f"a number {'>' if lo_open else '>='} {lo}" + (f" and < {hi}" if hi is not None else "")


_BOOL = (lambda v: isinstance(v, bool), "true or false")
_BOOL_OR_AUTO = (lambda v: isinstance(v, bool) or v == "auto", "true, false or 'auto'")
_STR = (lambda v: isinstance(v, str) and v != "", "a non-empty string")

#: parameter -> (predicate, what is expected); only the keys present in a bundle's ``run_params`` are checked
PARAM_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "image_size": _int(1),
    "batch_size": _int(1),
    "max_epochs": _int(1),
    "num_workers": _int(0),
    "seed": _int(0),
    "reprogrammer_blocks": _int(0),
    "learning_rate": _real(0.0, lo_open=True),
    "weight_decay": _real(0.0),
    "temperature": _real(0.0, lo_open=True),
    "val_fraction": _real(0.0, 1.0, lo_open=True),
    "detach_teacher": _BOOL,
    "teacher_trains_head": _BOOL,
    "teacher_warmup": _BOOL,
    "teacher_gate": _BOOL_OR_AUTO,
    "reprogrammer_lr_scale": _real(0.0, lo_open=True),
    "resume": _BOOL,
    "amp": _BOOL,
    "channels_last": _BOOL,
    "compile": _BOOL,
    "check_images": _BOOL,
    "progress_bar": _BOOL,
    "teacher": _STR,
    "student": _STR,
    "loss_weight_unit": (lambda v: v in ("iteration", "epoch"), "'iteration' or 'epoch'"),
    "on_bad_input": (lambda v: v in ("error", "skip"), "'error' or 'skip'"),
    "amp_dtype": (lambda v: v in ("bfloat16", "bf16", "float16", "fp16"), "'bfloat16' or 'float16'"),
}


def check_run_params(params: Mapping[str, Any], checks: Mapping | None = None) -> Mapping[str, Any]:
    """Raise :class:`ConfigError` listing every parameter whose value has the wrong type or range."""
    checks = PARAM_CHECKS if checks is None else checks
    bad = [
        f"  '{k}' = {params[k]!r} ({type(params[k]).__name__}): expected {checks[k][1]}"
        for k in params
        if k in checks and not checks[k][0](params[k])
    ]
    options = params.get("method_options")
    if isinstance(options, Mapping):
        from monai_rd.methods import METHODS

        own = sorted(set(options) & METHODS.bundle_args())
        if own:
            bad.append(f"  'method_options' = {options!r}: {own} are bundle ids of their own, not method options; "
                       f"set them as {' '.join(f'--{k} VALUE' for k in own)}")  # fmt: skip
    if bad:
        raise ConfigError(
            "invalid bundle parameter(s):\n" + "\n".join(bad) + "\nFix the value in the config or on the command line."
        )
    return params


def _ids(config: Any, prefix: str = "") -> set[str]:
    out = set()
    if isinstance(config, Mapping):
        items = config.items()
    elif isinstance(config, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(config))
    else:
        return out
    for k, v in items:
        key = f"{prefix}::{k}" if prefix else str(k)
        out.add(key)
        out |= _ids(v, key)
    return out


def _new_argument_of_a_component(config: Mapping, key: str) -> bool:
    """``parent::name`` where ``parent`` is a component (``_target_``) whose callable takes ``name`` (by name or
    ``**kwargs``): MONAI passes it on, so ``--teacher_def::pool attn`` reaches ``build_teacher(..., pool=...)``."""
    import inspect

    parent, _, name = key.rpartition("::")
    node: Any = config
    for part in parent.split("::") if parent else ():
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not isinstance(target, str) or target.startswith(("$", "@")) or name.startswith("_"):
        return False
    try:
        from pydoc import locate

        params = inspect.signature(locate(target)).parameters
    except Exception:  # a target that cannot be resolved here is reported by monai.bundle itself
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _override_keys(argv: Sequence[str]) -> tuple[list[str], str | None]:
    keys, config_file = [], None
    it = iter(range(len(argv)))
    for i in it:
        arg = argv[i]
        if arg.startswith("--"):
            key, _, inline = arg[2:].partition("=")
            if key == "config_file":
                config_file = inline or (argv[i + 1] if i + 1 < len(argv) else None)
            elif key not in RUN_ARGS:
                keys.append(key)
    return keys, config_file


def check_cli_overrides(argv: Sequence[str] | None = None) -> list[str]:
    """Raise :class:`ConfigError` for every ``--key`` override of ``monai.bundle run`` that is no config id.

    Reads the command line (default ``sys.argv``) and the ``--config_file`` list it names; ids nested with
    ``::`` or ``#`` are matched against the merged configs. Returns the override keys checked.
    """
    from monai.bundle import ConfigParser

    argv = list(sys.argv if argv is None else argv)
    keys, config_file = _override_keys(argv)
    if not keys or config_file is None:
        return keys
    try:
        config = ConfigParser.load_config_files(_config_list(config_file))
    except Exception:  # the config itself is reported by monai.bundle; do not mask that error
        return keys
    known = _ids(config) | {k.lstrip("+") for k in config}
    ids = {k: k.replace("#", "::").lstrip("+") for k in keys}
    unknown = [k for k in keys if ids[k] not in known and not _new_argument_of_a_component(config, ids[k])]
    if unknown:
        top = sorted(k for k in known if "::" not in k)
        lines = []
        for k in unknown:
            close = difflib.get_close_matches(k, top, n=2)
            lines.append(f"  --{k}" + (f" (did you mean {' or '.join('--' + c for c in close)}?)" if close else ""))
        raise ConfigError(
            "unknown bundle id(s) on the command line; they would be ignored:\n" + "\n".join(lines)
            + f"\nKnown top-level ids: {', '.join(top)}."
        )  # fmt: skip
    return keys


def _config_list(config_file: str) -> list[str] | str:
    text = config_file.strip()
    if text.startswith("["):
        import ast

        return list(ast.literal_eval(text))
    return text.split(",") if "," in text else text


def check_bundle_run(run_params: Mapping[str, Any], argv: Sequence[str] | None = None) -> None:
    """Both checks, for a bundle's ``initialize``: the command line's override ids, then ``run_params``."""
    check_cli_overrides(argv)
    check_run_params(run_params)


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_bool(value: Any) -> Any:
    """``True``/``False`` for what a command line writes (``true``, ``False``, ``TRUE``, ``1``, ``0`` ...).

    ``python -m monai.bundle run --resume true`` passes the string ``"true"`` (``fire`` parses only ``True``);
    any other value is returned unchanged, so :func:`check_run_params` refuses it naming the key.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return value


def bool_ids(checks: Mapping | None = None) -> list[str]:
    """The ids whose value must be a boolean (or ``"auto"``), from :data:`PARAM_CHECKS`."""
    checks = PARAM_CHECKS if checks is None else checks
    return [k for k, (pred, _) in checks.items() if pred in (_BOOL[0], _BOOL_OR_AUTO[0])]


def _active_parser() -> Any:
    """The ``monai.bundle.ConfigParser`` evaluating the calling expression, found on the call stack (or None)."""
    from monai.bundle import ConfigParser

    frame = sys._getframe(1)
    while frame is not None:
        obj = frame.f_locals.get("self")
        if isinstance(obj, ConfigParser):
            return obj
        frame = frame.f_back
    return None


def normalize_bool_ids(parser: Any, ids: Sequence[str] | None = None) -> dict[str, bool]:
    """Turn the boolean top-level ids of ``parser`` written as text or 0/1 into ``True``/``False`` in place.

    Must run before any of those ids is resolved (the bundles call it, through :func:`start_run`, as the
    first ``initialize`` expression, which references nothing). Returns the ids it changed.
    """
    changed = {}
    config = parser.get()
    for key in bool_ids() if ids is None else ids:
        if not isinstance(config, Mapping) or key not in config:
            continue
        value = parse_bool(config[key])
        if value is config[key] or not isinstance(value, bool):
            continue
        config[key] = value
        item = parser.ref_resolver.get_item(key)
        if item is not None:
            item.update_config(value)
        changed[key] = value
    return changed


def start_run() -> None:
    """First ``initialize`` expression of every bundle: real errors on the last line, booleans as booleans.

    Installs :func:`monai_rd.bundle.errors.install_error_report` and normalises the boolean ids of the config
    being run (``--resume true``, ``--amp 1``). Reference nothing from the config in the same expression.
    """
    from monai_rd.bundle.errors import install_error_report

    install_error_report()
    parser = _active_parser()
    if parser is not None:
        normalize_bool_ids(parser)


def dropped_per_epoch(loader: Any) -> int:
    """Items of ``loader``'s dataset that no batch of an epoch holds: ``len % batch_size`` with ``drop_last``."""
    batch = getattr(loader, "batch_size", None)
    if not getattr(loader, "drop_last", False) or not batch:
        return 0
    return len(loader.dataset) % batch


def _notice_dropped(split: str, loader: Any) -> None:
    skipped = dropped_per_epoch(loader)
    if skipped:
        n, batch = len(loader.dataset), loader.batch_size
        logging.getLogger("monai_rd").warning(
            f"{split}: {n} images, batch_size {batch} with drop_last: {skipped} image(s) per epoch are skipped "
            f"({len(loader)} step(s) per epoch; shuffling picks other ones each epoch). --batch_size "
            f"{_divisor_near(n, batch)} would use them all."
        )


def _divisor_near(n: int, batch: int) -> int:
    """The batch size nearest ``batch`` (ties: the smaller) that divides ``n``, at least 2 when ``n`` allows."""
    divisors = [d for d in range(2, n + 1) if n % d == 0] or [n]
    return min(divisors, key=lambda d: (abs(d - batch), d))


def check_epochs_run(loaders: Mapping[str, Any]) -> None:
    """Raise :class:`EmptyEpochError` if an epoch of a loader of ``loaders`` (split name -> DataLoader) is empty.

    A training split smaller than ``batch_size`` with ``drop_last=True`` (or a split whose every item was
    skipped) would otherwise let MONAI skip the run and exit 0 having trained nothing, with no checkpoint.
    A split that ``drop_last`` trims gets a one-line warning (logger ``monai_rd``) naming how many images each
    epoch skips and a batch size that skips none.
    """
    for split, loader in loaders.items():
        if len(loader) > 0:
            _notice_dropped(split, loader)
            continue
        n = len(loader.dataset)
        batch = getattr(loader, "batch_size", None)
        if n == 0:
            why = f"the {split} split is empty (no item listed, or every item was skipped as unreadable)"
            fix = "check --dataset_dir and the datalist, or on_bad_input"
        else:
            why = f"the {split} split has {n} item(s), fewer than batch_size {batch} with drop_last=True"
            fix = f"pass --batch_size {n} (or smaller), or add images"
        raise EmptyEpochError(
            f"{why}: an epoch would run 0 iterations and nothing would be "
            f"{'trained' if split == 'training' else 'scored'}. Fix: {fix}."
        )

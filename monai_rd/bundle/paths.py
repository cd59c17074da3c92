"""Helpers the bundles call from their configs: locating a bundle, recording the executed config."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_rd.data.datalist import SplitNotFoundError, read_datalist  # noqa: F401  (the bundles' name)
from monai_rd.utils import atomic_write_json

__all__ = [
    "bundles_dir",
    "bundle_names",
    "bundle_root",
    "copy_bundle",
    "bundle_command",
    "write_executed_config",
    "plain_values",
    "read_datalist",
    "SplitNotFoundError",
]

_PACKAGE = Path(__file__).resolve().parents[1]
#: where the bundles are: inside the installed package (a wheel ships them there), else the source checkout's
_CANDIDATES = (_PACKAGE / "bundles", _PACKAGE.parent / "bundles")


def bundles_dir() -> Path:
    """The folder holding the bundles installed with monai_rd (``bundles/`` of the repository for a checkout)."""
    for candidate in _CANDIDATES:
        if candidate.is_dir() and any((c / "configs").is_dir() for c in candidate.iterdir()):
            return candidate
    raise FileNotFoundError(
        f"No bundles found in {[str(c) for c in _CANDIDATES]}: reinstall monai-rd (the wheel ships them), "
        "or pass --bundle_root <path> to `python -m monai.bundle run`."
    )


def bundle_names() -> list[str]:
    """Names of the bundles installed with monai_rd (``rd_busi``, ``rd_isic`` ...)."""
    return sorted(p.name for p in bundles_dir().iterdir() if (p / "configs").is_dir())


def bundle_root(name: str) -> str:
    """Absolute path of the bundle ``name`` (e.g. ``"rd_busi"``), whatever the working directory."""
    root = bundles_dir() / name
    if not (root / "configs").is_dir():
        raise FileNotFoundError(
            f"Bundle {name!r} not found under {root.parent} (installed: {bundle_names()}); pass --bundle_root <path>."
        )
    return str(root)


def copy_bundle(name: str, dest: str | os.PathLike) -> str:
    """Copy the installed bundle ``name`` to ``dest`` (which must not exist) for editing; returns its path.

    The copy is a standalone MONAI bundle: its configs still find ``monai_rd`` code by dotted path, and its
    ``bundle_root`` should be passed on the command line (``--bundle_root <dest>``) to use its own files.
    """
    dest = os.path.abspath(os.fspath(dest))
    if os.path.exists(dest):
        raise FileExistsError(f"{dest!r} already exists; choose a new folder for the copy of {name!r}.")
    shutil.copytree(bundle_root(name), dest, ignore=shutil.ignore_patterns("outputs", "__pycache__", "*.pyc"))
    return dest


def bundle_args(name: str | os.PathLike, configs: list[str] | str, **overrides: Any) -> list[str]:
    """The argv of ``python -m monai.bundle run`` for bundle ``name``: the one place a bundle command is built
    (the CLI's printed next steps, the demo, the protocol runner and the tests all use it).

    ``name`` is an installed bundle's name or a bundle folder's absolute path (a copy: ``monai-rd bundle copy``).
    ``configs`` names files of the bundle's ``configs/`` folder, or absolute paths of files elsewhere (a grid cell's
    overrides file); several are overlays, merged in order (``--config_file "['a','b']"``). ``overrides`` become
    ``--key value`` pairs, in order.
    """
    names = [configs] if isinstance(configs, str) else list(configs)
    root = os.fspath(name) if os.path.isabs(os.fspath(name)) else bundle_root(os.fspath(name))
    paths = [os.path.join(root, "configs", c) for c in names]  # an absolute c stays as it is
    config_file = paths[0] if len(paths) == 1 else "[" + ",".join(repr(p) for p in paths) + "]"
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    return args


def bundle_command(name: str | os.PathLike, configs: list[str] | str, **overrides: Any) -> str:
    """:func:`bundle_args` as one shell line, to print for a user."""
    args = bundle_args(name, configs, **overrides)
    config_file = args[args.index("--config_file") + 1]
    line = shlex.join(args)
    if config_file.startswith("[") and not any(c in config_file for c in '"$`\\'):  # "['a','b']" reads better
        line = line.replace(shlex.quote(config_file), f'"{config_file}"')
    return line


def write_executed_config(
    config_file: str | os.PathLike,
    values: Mapping[str, Any],
    path: str | os.PathLike,
    effective: Mapping[str, Any] | None = None,
    parser: Any = None,
) -> str:
    """Write the config as executed: the config after every command-line override, its run ids resolved.

    The starting point is the config of ``parser`` (by default the ``monai.bundle.ConfigParser`` evaluating the
    calling expression: the file(s) being run with the command line's ``--id value`` overrides applied and the
    boolean ids normalised), or ``config_file`` read as is when no parser runs. ``values`` holds the resolved
    values of ids whose config value is an expression (``output_dir``, ``class_names``, ``device`` ...);
    ``effective`` adds the values the machine decides (:func:`monai_rd.networks.amp_effect`) as new top-level ids.
    Every top-level id whose executed value is a plain value (no ``$``/``@``/``%``, no ``_target_``) is then
    what ran; :func:`plain_values` returns them, the bundles' MLflow params. The file is written atomically and
    its path returned, ready to be logged as an MLflow artifact.

    Raises:
        KeyError: an id of ``values`` is not a top-level id of the config, or an id of ``effective`` is one.
    """
    import copy

    if parser is None:
        from monai_rd.bundle.config_check import _active_parser

        parser = _active_parser()
    if parser is not None:
        config = copy.deepcopy(dict(parser.get()))
        source = f"the config being run ({os.fspath(config_file)!r} and its overrides)"
    else:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
        source = repr(os.fspath(config_file))
    unknown = sorted(set(values) - set(config))
    if unknown:
        raise KeyError(f"write_executed_config: ids {unknown} are not top-level ids of {source}.")
    clash = sorted(set(effective or {}) & set(config))
    if clash:
        raise KeyError(f"write_executed_config: effective ids {clash} already are ids of {source}; rename them.")
    config.update({k: _json_value(v) for k, v in values.items()})
    config.update({k: _json_value(v) for k, v in (effective or {}).items()})
    return atomic_write_json(path, config)


def _json_value(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _is_plain(value: Any) -> bool:
    """A config value that is data, not code: no ``$``/``@``/``%`` string and no ``_target_`` at any depth."""
    if isinstance(value, str):
        return not value.startswith(("$", "@", "%"))
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return "_target_" not in value and all(_is_plain(v) for v in value.values())
    return True


def plain_values(executed: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """The top-level ids of an executed config (its path or its dict) whose value is plain data.

    These are the run's settings as they ran (command-line overrides included); the bundles log them as MLflow
    params, so the record and the params cannot disagree.
    """
    if not isinstance(executed, Mapping):
        with open(executed, encoding="utf-8") as f:
            executed = json.load(f)
    return {k: v for k, v in executed.items() if not k.startswith("_") and _is_plain(v)}

"""Helpers the bundles call from their configs: locating a bundle, recording the executed config."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_rd.utils import atomic_write_json

__all__ = ["bundles_dir", "bundle_root", "write_executed_config", "read_datalist"]


def bundles_dir() -> Path:
    """The ``bundles/`` folder shipped with monai_rd (the repository's, for a source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "bundles", here.parent / "bundles", here / "bundles"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"No bundles/ folder next to {here}: run from a monai_rd source checkout, or pass --bundle_root <path>."
    )


def bundle_root(name: str) -> str:
    """Absolute path of the bundle ``name`` (e.g. ``"rd_busi"``), whatever the working directory."""
    root = bundles_dir() / name
    if not (root / "configs").is_dir():
        raise FileNotFoundError(f"Bundle {name!r} not found under {root.parent}; pass --bundle_root <path>.")
    return str(root)


def write_executed_config(config_file: str | os.PathLike, values: Mapping[str, Any], path: str | os.PathLike) -> str:
    """Write the config as executed: ``config_file`` with its top-level ids replaced by their run values.

    ``values`` holds the resolved values of the ids a user overrides (``dataset_dir``, ``max_epochs`` ...);
    the file is written atomically and returned, ready to be logged as an MLflow artifact.
    """
    with open(config_file, encoding="utf-8") as f:
        config = json.load(f)
    unknown = sorted(set(values) - set(config))
    if unknown:
        raise KeyError(f"write_executed_config: ids {unknown} are not top-level ids of {os.fspath(config_file)!r}.")
    config.update({k: v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
                   for k, v in values.items()})
    return atomic_write_json(path, config)


def read_datalist(path: str | os.PathLike, key: str) -> list[dict]:
    """The ``key`` list (``"training"``, ``"validation"``) of a datalist JSON, with a clear error if absent."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Datalist {path!r} does not exist; run training first or pass --datalist_file.")
    with open(path, encoding="utf-8") as f:
        datalist = json.load(f)
    if key not in datalist or not isinstance(datalist[key], list):
        raise KeyError(f"Datalist {path!r} has no list under {key!r} (keys: {sorted(datalist)}).")
    return datalist[key]

"""Render the bundles from one template and a small spec per bundle (``monai-rd render-bundles``).

The bundles under ``bundles/`` are self-contained MONAI model-zoo folders: nothing reads the template at run time.
They are *written* from ``bundles/_template/``::

    bundles/_template/
      bundle/                the shared skeleton, laid out as a bundle folder: configs/*.json, configs/logging.conf,
                             docs/README.md, LICENSE, large_files.yml
      specs/<name>/spec.json what bundle <name> fills in and where it departs from the skeleton
      specs/<name>/about.md  (optional) the bundle's own README text, above the shared model card
      specs/<name>/files/    (optional) whole files that replace the skeleton's (same relative path)

A ``spec.json`` has two parts:

- ``"values"``: what fills the skeleton's ``<<placeholder>>`` marks (``<<name>>``, ``<<dataset_dir>>`` ...). A mark
  standing alone as a JSON string is replaced by the value as it is (a number stays a number); inside a longer
  string or a text file the value must be a string. Every mark left must have a value, every value a mark.
- ``"configs"``: per JSON file of the skeleton (``"train.json"`` ...), a list of patch operations applied in order
  before the marks are filled: ``{"op": "replace", "id": ..., "value": ...}`` (the id must exist),
  ``{"op": "add", "id": ..., "value": ..., "after": <sibling id>}`` (a new dict key, placed after ``after`` or
  first when ``after`` is null; in a list, inserted at the index), ``{"op": "remove", "id": ...}``. Ids are MONAI
  ids, as on a ``python -m monai.bundle run`` command line, except that a list item may be named by its
  ``_target_`` when no other item of the list has it (``train::handlers::monai_rd.handlers.BestModelReport``):
  an item inserted into the skeleton's list then shifts no patch onto the wrong item.

A patch is a declared deviation from the shared structure: an edit that every bundle shares is one edit of the
skeleton. Rendering is deterministic (JSON written with 4-space indents, a container on one line when it fits in
120 columns) and atomic (each file through a temporary file and a rename).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_rd.utils import atomic_write_text

__all__ = [
    "TEMPLATE_DIR",
    "SpecError",
    "template_dir",
    "spec_names",
    "render_bundle",
    "render_bundles",
    "check_bundles",
    "format_json",
    "apply_patch",
    "fill_placeholders",
]

#: the template's folder name inside ``bundles/``: not a bundle (no ``configs/`` of its own), never listed by
#: :func:`monai_rd.bundle.bundle_names`
TEMPLATE_DIR = "_template"
#: the folders of a bundle that the template owns whole: a file there that the template does not write is stale
OWNED = ("configs", "docs")
WIDTH = 120
_OP_KEYS = {"op", "id", "value", "after"}
PLACEHOLDER = re.compile(r"<<([A-Za-z_][A-Za-z0-9_]*)>>")


class SpecError(ValueError):
    """A bundle spec does not fit the template (an unknown id, a mark without a value, a value without a mark)."""


def template_dir(bundles: str | os.PathLike | None = None) -> Path:
    """The template folder: ``<bundles>/_template`` (by default under :func:`monai_rd.bundle.bundles_dir`)."""
    if bundles is None:
        from monai_rd.bundle.paths import bundles_dir

        bundles = bundles_dir()
    return Path(bundles) / TEMPLATE_DIR


def spec_names(template: str | os.PathLike | None = None) -> list[str]:
    """Names of the bundles the template renders (one ``specs/<name>/spec.json`` each), sorted."""
    specs = Path(template or template_dir()) / "specs"
    return sorted(p.parent.name for p in specs.glob("*/spec.json"))


# ---------------------------------------------------------------------------------------------------- JSON format
def format_json(obj: Any, width: int = WIDTH) -> str:
    """``obj`` as JSON, 4-space indents, each container on one line when that line fits in ``width`` columns.

    Deterministic: the same object always gives the same text (keys in their order, non-ASCII kept as is).
    """
    return _format(obj, 0, 0, width) + "\n"


def _format(value: Any, indent: int, lead: int, width: int) -> str:
    one = json.dumps(value, ensure_ascii=False)
    # lead: the characters before the value on its line (indent, key); +1 for a following comma
    if not isinstance(value, (dict, list)) or not value or indent + lead + len(one) + 1 <= width:
        return one
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            key = json.dumps(k, ensure_ascii=False) + ": "
            items.append(pad + key + _format(v, indent + 4, len(key), width))
    else:
        items = [pad + _format(v, indent + 4, 0, width) for v in value]
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return opening + "\n" + ",\n".join(items) + "\n" + " " * indent + closing


# ---------------------------------------------------------------------------------------------------- patches
def _parts(id_: str) -> list[str]:
    return id_.replace("#", "::").split("::")


def _key(container: Any, part: str, id_: str, *, new: bool = False) -> Any:
    if isinstance(container, dict):
        if not new and part not in container:
            raise SpecError(f"id {id_!r}: no key {part!r} (keys: {list(container)})")
        return part
    if isinstance(container, list):
        if not part.lstrip("-").isdigit():  # a list item named by its _target_ (one item only)
            found = [i for i, v in enumerate(container) if isinstance(v, dict) and v.get("_target_") == part]
            if len(found) != 1:
                targets = [v.get("_target_") for v in container if isinstance(v, dict)]
                raise SpecError(f"id {id_!r}: {len(found)} items with _target_ {part!r} in the list ({targets})")
            return found[0]
        index = int(part)
        if not 0 <= index < len(container) + (1 if new else 0):
            raise SpecError(f"id {id_!r}: index {index} out of range (the list has {len(container)} items)")
        return index
    raise SpecError(f"id {id_!r}: {part!r} is below a value that is neither a dict nor a list")


def _parent(config: Any, id_: str) -> tuple[Any, str]:
    parts = _parts(id_)
    node = config
    for part in parts[:-1]:
        node = node[_key(node, part, id_)]
    return node, parts[-1]


def apply_patch(config: Any, ops: Sequence[Mapping[str, Any]], where: str = "config") -> Any:
    """A copy of ``config`` with the patch operations ``ops`` applied in order (see the module docstring).

    Raises:
        SpecError: an operation names an id that is not there (``replace``, ``remove``), or is already there
            (``add`` of a dict key), or an unknown operation; ``where`` names the file in the message.
    """
    config = copy.deepcopy(config)
    for op in ops:
        kind, id_ = op.get("op"), op.get("id")
        if not isinstance(id_, str) or kind not in ("replace", "add", "remove") or set(op) - _OP_KEYS:
            raise SpecError(
                f"{where}: {dict(op)} is not an operation (op: replace, add or remove; id: a MONAI id; value; after)"
            )
        try:
            parent, last = _parent(config, id_)
            if kind == "replace":
                parent[_key(parent, last, id_)] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[_key(parent, last, id_)]
            elif isinstance(parent, list):
                parent.insert(_key(parent, last, id_, new=True), copy.deepcopy(op["value"]))
            else:
                if last in parent:
                    raise SpecError(f"id {id_!r} already exists: use op 'replace'")
                after = op.get("after")
                if after is not None and after not in parent:
                    raise SpecError(f"id {id_!r}: 'after' names {after!r}, not a key of its parent ({list(parent)})")
                items = list(parent.items())
                at = 0 if after is None else [k for k, _ in items].index(after) + 1
                items.insert(at, (last, copy.deepcopy(op["value"])))
                parent.clear()
                parent.update(items)
        except SpecError as e:
            raise SpecError(f"{where}: {e}") from None
        except KeyError as e:
            raise SpecError(f"{where}: {dict(op)} lacks {e}") from None
    return config


def fill_placeholders(value: Any, values: Mapping[str, Any], used: set[str] | None = None, where: str = "") -> Any:
    """``value`` with every ``<<mark>>`` in its strings (not its keys) replaced from ``values``.

    A string that is one mark alone becomes the value as it is (any JSON type); a mark inside a longer string takes
    a string value. The names used are added to ``used``.

    Raises:
        SpecError: a mark has no value, or a non-string value is asked for inside a longer string.
    """
    used = set() if used is None else used
    if isinstance(value, dict):
        return {k: fill_placeholders(v, values, used, where) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(v, values, used, where) for v in value]
    if not isinstance(value, str) or "<<" not in value:
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole and whole.group(1) in values:
        used.add(whole.group(1))
        return copy.deepcopy(values[whole.group(1)])

    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise SpecError(f'{where}: no value for <<{name}>> (give it in the spec\'s "values")')
        if not isinstance(values[name], str):
            raise SpecError(f"{where}: <<{name}>> is inside a longer text, so its value must be a string")
        used.add(name)
        return values[name]

    return PLACEHOLDER.sub(sub, value)


# ---------------------------------------------------------------------------------------------------- rendering
def _read_spec(template: Path, name: str) -> dict:
    path = template / "specs" / name / "spec.json"
    if not path.is_file():
        raise SpecError(f"No spec for bundle {name!r}: expected {path} (specs: {spec_names(template)})")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    unknown = set(spec) - {"values", "configs"}
    if unknown:
        raise SpecError(f'{path}: unknown keys {sorted(unknown)} (a spec has "values" and "configs")')
    return spec


def render_bundle(name: str, template: str | os.PathLike | None = None) -> dict[str, str]:
    """The files of bundle ``name`` as the template renders them: {relative path: text}, paths sorted.

    Raises:
        SpecError: the spec does not fit the template (the message names the file and the id or mark).
    """
    template = Path(template or template_dir())
    spec = _read_spec(template, name)
    values = dict(spec.get("values", {}))
    values.setdefault("name", name)
    about = template / "specs" / name / "about.md"
    if about.is_file():
        values.setdefault("about", about.read_text(encoding="utf-8").rstrip("\n"))
    patches = dict(spec.get("configs", {}))
    skeleton, overrides = template / "bundle", template / "specs" / name / "files"
    sources = {p.relative_to(skeleton).as_posix(): p for p in skeleton.rglob("*") if p.is_file()}
    if overrides.is_dir():
        sources.update({p.relative_to(overrides).as_posix(): p for p in overrides.rglob("*") if p.is_file()})
    used: set[str] = set()
    out = {}
    for rel in sorted(sources):
        text = sources[rel].read_text(encoding="utf-8")
        where = f"{name}/{rel}"
        if rel.endswith(".json"):
            config = apply_patch(json.loads(text), patches.pop(Path(rel).name, []), where)
            out[rel] = format_json(fill_placeholders(config, values, used, where))
        else:
            out[rel] = fill_placeholders(text, values, used, where)
    if patches:
        raise SpecError(f"{name}: patches for {sorted(patches)}, which the template does not have")
    unused = set(spec.get("values", {})) - used
    if unused:
        raise SpecError(f"{name}: values {sorted(unused)} fill no <<mark>> of the template (remove them)")
    return out


def _bundle_files(root: Path) -> set[str]:
    """The files of a checked-in bundle that the template owns (those under configs/ and docs/)."""
    return {p.relative_to(root).as_posix() for d in OWNED if (root / d).is_dir() for p in (root / d).rglob("*")
            if p.is_file()}  # fmt: skip


def check_bundles(bundles: str | os.PathLike | None = None, template: str | os.PathLike | None = None) -> list[str]:
    """What differs between the bundles under ``bundles`` and their rendering: one line per file, empty when none.

    A line names the file (``rd_busi/configs/train.json differs from its rendering``), a file of configs/ or docs/
    the template does not write, a bundle without a spec or a spec without a bundle folder.
    """
    from monai_rd.bundle.paths import bundles_dir

    bundles = Path(bundles or bundles_dir())
    template = Path(template or template_dir(bundles))
    names = spec_names(template)
    present = sorted(p.name for p in bundles.iterdir() if (p / "configs").is_dir())
    problems = [f"{n}: a bundle folder with no spec (add {template}/specs/{n}/spec.json)" for n in present
                if n not in names]  # fmt: skip
    for name in names:
        root = bundles / name
        files = render_bundle(name, template)
        for rel, text in files.items():
            path = root / rel
            if not path.is_file():
                problems.append(f"{name}/{rel} is missing (run: monai-rd render-bundles)")
            elif path.read_text(encoding="utf-8") != text:
                problems.append(f"{name}/{rel} differs from its rendering (run: monai-rd render-bundles)")
        for rel in sorted(_bundle_files(root) - set(files)) if root.is_dir() else ():
            problems.append(f"{name}/{rel} is not written by the template (move it into {template}, or delete it)")
    return problems


def render_bundles(
    bundles: str | os.PathLike | None = None,
    template: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
) -> list[str]:
    """Write every bundle (or those of ``names``) from the template into ``bundles``; returns the files changed.

    Every bundle is rendered before anything is written, so a spec error leaves every file as it was. A file whose
    text is already right is not touched; a changed one is written atomically (temporary file, then rename).
    """
    from monai_rd.bundle.paths import bundles_dir

    bundles = Path(bundles or bundles_dir())
    template = Path(template or template_dir(bundles))
    rendered = {name: render_bundle(name, template) for name in (names or spec_names(template))}
    changed = []
    for name, files in rendered.items():
        for rel, text in files.items():
            path = bundles / name / rel
            if path.is_file() and path.read_text(encoding="utf-8") == text:
                continue
            atomic_write_text(path, text)
            changed.append(f"{name}/{rel}")
    return changed

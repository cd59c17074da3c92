"""Model cards: a bundle's ``docs/README.md`` rendered with the values and metrics of one training run.

The card is a template: ``{{name}}`` placeholders (``teacher``, ``student``, ``image_size``, ``dataset``,
``registered_model``, ``version``, ``run_id``, ``metrics``...) are replaced by the run's values; ``{{metrics}}``
becomes a Markdown table of the run's metrics with their confidence intervals where the run logged them
(``<metric>_ci_low``/``<metric>_ci_high``, or ``_lower``/``_upper``). A placeholder without a value is
rendered as ``not measured in this run``, never left as a template or filled with a made-up number.
``{{recipe}}`` is the training recipe of the run, a table read from its ``executed_config.json``
(:func:`recipe_table`), so the card says what ran, not what the template's author expected to run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

__all__ = [
    "render_card",
    "metrics_table",
    "recipe_table",
    "read_card",
    "run_values",
    "RECIPE_IDS",
    "CI_SUFFIXES",
    "MISSING",
]

MISSING = "not measured in this run"
CI_SUFFIXES = (("_ci_low", "_ci_high"), ("_ci_lower", "_ci_upper"), ("_lower", "_upper"))
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

#: the ids of a train config that say how a model was trained, in the order the card lists them
RECIPE_IDS = (
    "method", "method_options", "teacher", "teacher_weights", "teacher_weights_source", "teacher_weights_sha256",
    "student", "image_size", "loss_schedule", "loss_weights", "teacher_trains_head", "teacher_warmup", "teacher_gate",
    "reprogrammer_budget", "reprogrammer_blocks", "detach_teacher", "temperature", "learning_rate", "weight_decay",
    "batch_size", "max_epochs", "split_protocol", "val_fraction", "test_fraction", "folds", "fold", "seed",
)  # fmt: skip


def _resolved(value: object) -> bool:
    """False for a config expression or reference left unresolved (``$...``, ``@...``): not a value that ran."""
    return not (isinstance(value, str) and value[:1] in ("$", "@", "%"))


def run_values(executed_config: str | os.PathLike) -> dict[str, object]:
    """The resolved top-level values of a run's ``executed_config.json`` (expressions left out), ready for the
    card's placeholders; a clear error when the file is missing."""
    path = os.fspath(executed_config)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Executed config {path!r} not found: the model card is rendered from the run's executed_config.json, "
            "which training writes into its output_dir before the first epoch."
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    return {k: v for k, v in config.items() if _resolved(v)}


def recipe_table(values: Mapping[str, object]) -> str:
    """Markdown table ``setting | value`` of the :data:`RECIPE_IDS` in ``values`` (a run's resolved config)."""
    rows = ["| setting | value |", "|---|---|"]
    for key in RECIPE_IDS:
        if key in values and _resolved(values[key]):
            value = values[key]
            shown = "null" if value is None else json.dumps(value) if isinstance(value, (dict, list, bool)) else value
            rows.append(f"| `{key}` | `{shown}` |")
    return "\n".join(rows) if len(rows) > 2 else MISSING


def metrics_table(metrics: Mapping[str, float], prefixes: tuple[str, ...] = ("test_", "val_")) -> str:
    """Markdown table ``metric | value | 95% CI`` of the metrics starting with one of ``prefixes``."""
    bounds = {s for pair in CI_SUFFIXES for s in pair}
    names = sorted(k for k in metrics if k.startswith(prefixes) and not any(k.endswith(s) for s in bounds))
    if not names:
        return MISSING
    rows = ["| metric | value | 95% CI |", "|---|---|---|"]
    for k in names:
        ci = "not computed"
        for low, high in CI_SUFFIXES:
            if k + low in metrics and k + high in metrics:
                ci = f"[{float(metrics[k + low]):.4f}, {float(metrics[k + high]):.4f}]"
                break
        rows.append(f"| {k} | {float(metrics[k]):.4f} | {ci} |")
    return "\n".join(rows)


def render_card(template: str, values: Mapping[str, object], metrics: Mapping[str, float] | None = None) -> str:
    """``template`` with every ``{{name}}`` replaced by ``values[name]`` (``{{metrics}}`` by the metrics table,
    ``{{recipe}}`` by :func:`recipe_table` of ``values``)."""
    table = metrics_table(metrics or {})
    recipe = recipe_table(values)

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key == "metrics":
            return table
        if key == "recipe":
            return recipe
        value = values.get(key)
        return MISSING if value is None or value == "" else str(value)

    return _PLACEHOLDER.sub(sub, template)


def read_card(path: str | os.PathLike) -> str:
    """The card template at ``path`` (a bundle's ``docs/README.md``); a clear error if it is missing."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model card template {path!r} not found; every bundle ships docs/README.md.")
    with open(path, encoding="utf-8") as f:
        return f.read()

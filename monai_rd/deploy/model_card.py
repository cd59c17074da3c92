"""Model cards: a bundle's ``docs/README.md`` rendered with the values and metrics of one training run.

The card is a template: ``{{name}}`` placeholders (``teacher``, ``student``, ``image_size``, ``dataset``,
``registered_model``, ``version``, ``run_id``, ``metrics``...) are replaced by the run's values; ``{{metrics}}``
becomes a Markdown table of the run's metrics with their confidence intervals where the run logged them
(``<metric>_ci_low``/``<metric>_ci_high``, or ``_lower``/``_upper``). A placeholder without a value is
rendered as ``not measured in this run``, never left as a template or filled with a made-up number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["render_card", "metrics_table", "read_card", "CI_SUFFIXES", "MISSING"]

MISSING = "not measured in this run"
CI_SUFFIXES = (("_ci_low", "_ci_high"), ("_ci_lower", "_ci_upper"), ("_lower", "_upper"))
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


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
    """``template`` with every ``{{name}}`` replaced by ``values[name]`` (``{{metrics}}`` by the metrics table)."""
    table = metrics_table(metrics or {})

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key == "metrics":
            return table
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

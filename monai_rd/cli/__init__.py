"""The ``monai-rd`` command line: one module per sub-command, each with ``add_arguments`` and ``run``.

The sub-command modules import nothing heavy at module level (torch, MONAI, ``monai_rd.data`` ...): their
``run`` does, so ``monai-rd --help`` and every sub-command's ``--help`` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "COMMANDS"]

# sub-command name -> module under monai_rd.cli defining ``add_arguments(parser)`` and ``run(args) -> int``
COMMANDS = {
    "bundle": "bundle",
    "render-bundles": "render_bundles",
    "demo": "demo",
    "fetch-teacher": "fetch_teacher",
    "export": "export",
    "cost": "cost",
    "label-bundle": "label_bundle",
    "index": "index",
    "cache-features": "cache_features",
    "rank-teachers": "rank_teachers",
    "task-families": "task_families",
    "bench": "bench",
    "reproduce": "reproduce",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monai-rd", description="Reprogramming Distillation for MONAI.")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.__doc__))
    args = parser.parse_args(argv)
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

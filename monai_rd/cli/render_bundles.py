"""Write the bundles from their one template (``bundles/_template``), or check that they match it.

``monai-rd render-bundles`` renders every bundle's files from the shared skeleton and its spec and writes those
that changed (atomically); ``monai-rd render-bundles --check`` writes nothing, lists each file that differs from
its rendering and exits 1 when there is one. Edit the template, never a rendered bundle: ``docs/bundles.md``.
"""

from __future__ import annotations

import argparse
import sys

HELP = "write the bundles from bundles/_template (--check: only list the files that differ, exit 1 if any)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each differing file")
    parser.add_argument("--bundles", default=None, help="the bundles folder (default: the checkout's bundles/)")
    parser.add_argument("--template", default=None, help="the template folder (default: <bundles>/_template)")


def run(args: argparse.Namespace) -> int:
    from monai_rd.bundle.render import SpecError, check_bundles, render_bundles

    try:
        if args.check:
            problems = check_bundles(args.bundles, args.template)
            for line in problems:
                print(line, file=sys.stderr)
            if problems:
                print(f"monai-rd render-bundles --check: {len(problems)} file(s) differ; run: monai-rd render-bundles",
                      file=sys.stderr)  # fmt: skip
                return 1
            print("every bundle matches its rendering")
            return 0
        changed = render_bundles(args.bundles, args.template)
    except (SpecError, FileNotFoundError) as e:
        print(f"monai-rd render-bundles: {e}", file=sys.stderr)
        return 2
    print("\n".join(f"wrote {c}" for c in changed) if changed else "every bundle was already up to date")
    return 0

"""Find or copy the MONAI bundles installed with monai_rd, so their commands work from any folder.

``monai-rd bundle path rd_busi`` prints the bundle's absolute folder (use it in ``--config_file``);
``monai-rd bundle copy rd_busi DEST`` copies it for editing; ``monai-rd bundle list`` names them.
"""

from __future__ import annotations

import argparse
import sys

HELP = "print the path of an installed bundle (path NAME), copy it (copy NAME DEST), or list them (list)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    path = actions.add_parser("path", help="absolute folder of bundle NAME (its configs are under configs/)")
    path.add_argument("name", help="bundle name, e.g. rd_busi")
    path.add_argument("--config", default=None, help="print the path of this file of configs/ instead")
    copy = actions.add_parser("copy", help="copy bundle NAME to DEST (a new folder) for editing")
    copy.add_argument("name")
    copy.add_argument("dest")
    actions.add_parser("list", help="names of the installed bundles")


def run(args: argparse.Namespace) -> int:
    import os

    from monai_rd.bundle.paths import bundle_names, bundle_root, copy_bundle

    try:
        if args.action == "list":
            print("\n".join(bundle_names()))
        elif args.action == "path":
            root = bundle_root(args.name)
            path = os.path.join(root, "configs", args.config) if args.config else root
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path!r} does not exist (files: {sorted(os.listdir(os.path.dirname(path)))})")
            print(path)
        else:
            print(copy_bundle(args.name, args.dest))
    except (FileNotFoundError, FileExistsError) as e:
        print(f"monai-rd bundle: {e}", file=sys.stderr)
        return 2
    return 0

"""Index a team's own data (one folder per class, or a CSV) into a MONAI datalist, and print what was found.

Sources may be PNG/JPEG/BMP/TIFF images, DICOM files, DICOM series folders and NIfTI volumes; volumes become
2D slice items. Run it on a PACS export before training to see the classes, the split and any file that cannot
be read (named, with the reason): the indexer decodes every source and the datalist then goes through
:func:`~monai_rd.data.validate_datalist`, the check the bundles run, so what it refuses is a
:class:`~monai_rd.data.BadInputError`.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

HELP = "index a folder-per-class or CSV dataset (images, DICOM, NIfTI) into a datalist JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="the dataset folder (<dir>/<class>/<sources>) or a CSV file (with --csv)")
    parser.add_argument("--out", required=True, help="datalist JSON to write (atomically)")
    parser.add_argument("--csv", action="store_true", help="source is a CSV with one row per source")
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--group_column", default=None, help="CSV column grouping rows (stored hashed)")
    parser.add_argument("--slice_mode", default="middle", help="all, middle or foreground (default middle)")
    parser.add_argument("--slice_axis", default="axial", help="axial, coronal or sagittal (NIfTI)")
    parser.add_argument("--slice_threshold", type=float, default=None)
    parser.add_argument("--slice_min_fraction", type=float, default=0.01)
    parser.add_argument("--multi_series", choices=("error", "all"), default="error")
    parser.add_argument("--nifti_volume_index", type=int, default=None)
    parser.add_argument("--val_fraction", type=float, default=0.2)
    parser.add_argument("--test_fraction", type=float, default=0.2, help="share held out as the test split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation split (or of the folds)")
    parser.add_argument("--test_seed", type=int, default=0, help="seed of the held-out test split")
    parser.add_argument(
        "--split_protocol",
        default="holdout",
        help="holdout: training/validation/test; paper_4to1: the paper's 4:1, validation = test",
    )
    parser.add_argument("--folds", type=int, default=None, help="k-fold cross-validation over the non-test items")
    parser.add_argument("--fold", type=int, default=None, help="the fold (0-based) used as validation")


def run(args: argparse.Namespace) -> int:
    from monai_rd.data.checks import validate_datalist
    from monai_rd.data.indexers.folders import index_class_folders, index_csv

    options = dict(
        slice_mode=args.slice_mode,
        slice_axis=args.slice_axis,
        slice_threshold=args.slice_threshold,
        slice_min_fraction=args.slice_min_fraction,
        multi_series=args.multi_series,
        nifti_volume_index=args.nifti_volume_index,
        val_fraction=args.val_fraction,
        seed=args.seed,
        datalist_file=args.out,
        test_fraction=args.test_fraction,
        test_seed=args.test_seed,
        split_protocol=args.split_protocol,
        folds=args.folds,
        fold=args.fold,
    )
    try:
        if args.csv:
            datalist = index_csv(
                args.source,
                image_column=args.image_column,
                label_column=args.label_column,
                group_column=args.group_column,
                **options,
            )
        else:
            datalist = index_class_folders(args.source, **options)
        # the one validator, as the bundles run it (the indexer decoded every source): labels and usable splits
        validate_datalist(datalist, splits=("training", "validation", "test"), decode=False)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"monai-rd index: {e}", file=sys.stderr)
        return 2
    print(f"classes: {datalist['classes']}")
    fold = f", fold {datalist['fold']} of {datalist['folds']}" if "folds" in datalist else ""
    print(f"split protocol: {datalist['split_protocol']}{fold}")
    for split in ("training", "validation", "test"):
        items = datalist[split]
        counts = Counter(i["class_name"] for i in items)
        groups = len({i["group"] for i in items})
        per_class = ", ".join(f"{c}={counts.get(c, 0)}" for c in datalist["classes"])
        print(f"{split}: {len(items)} items from {groups} groups ({per_class})")
    print(f"split_hash: {datalist['split_hash']}\nwritten: {args.out}")
    return 0

"""Build the teacher-feature cache of a bundle: its own datalist, transforms and teacher, read from its config.

Example::

    monai-rd cache-features --config_file bundles/rd_busi/configs/train.json \\
        --dataset_dir /data/Dataset_BUSI_with_GT --feature_cache /data/rd_cache --views 8 --dtype float16
    python -m monai.bundle run --config_file bundles/rd_busi/configs/train.json \\
        --dataset_dir /data/Dataset_BUSI_with_GT --feature_cache /data/rd_cache

A second run reuses every chunk that is still valid (an interrupted build resumes; a changed teacher,
transform or image rebuilds what it affects).
"""

from __future__ import annotations

import argparse
import json
import os

HELP = "precompute the frozen teacher's features for a bundle (K augmented views per training image)"

# ids read from the bundle config (the rd_busi names); each can be renamed with --<name>_id
BUNDLE_IDS = {
    "datalist": "datalist",
    "train_transform": "train::preprocessing",
    "val_transform": "validate::preprocessing",
    "teacher_def": "teacher_def",
    "teacher": "teacher",
    "teacher_weights": "teacher_weights",
    "feature_cache": "feature_cache",
    "device": "device",
    "seed": "seed",
}
_META_KEYS = {"_target_", "_disabled_", "_requires_", "_desc_", "_mode_", "name", "weights"}


def _value(text: str):
    """A command-line override value: JSON when it parses (numbers, null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config_file", required=True, nargs="+", help="bundle config file(s), e.g. train.json")
    parser.add_argument("--feature_cache", default=None, help="cache folder (default: the config's feature_cache)")
    parser.add_argument("--views", type=int, default=8, help="K augmented views per training image (default 8)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float16")
    parser.add_argument(
        "--batch_size", type=int, default=32, help="images per teacher forward pass (independent of the training batch)"
    )
    parser.add_argument("--chunk_size", type=int, default=64, help="items per chunk file (the unit of resumption)")
    parser.add_argument(
        "--num_workers",
        type=int,
        default=None,
        help="DataLoader workers reading images ahead of the teacher (default: chosen from the CPUs)",
    )
    parser.add_argument("--splits", nargs="+", default=["training", "validation"], choices=("training", "validation"))
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    for name in ("dataset_dir", "output_dir", "image_size", "teacher", "teacher_weights", "seed"):
        parser.add_argument(f"--{name}", default=None, help=f"override the config's {name}")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("ID", "VALUE"),
                        help="override any config id (VALUE parsed as JSON when possible); repeatable")  # fmt: skip


def teacher_options(parser, teacher_def_id: str = BUNDLE_IDS["teacher_def"]) -> dict:
    """The teacher builder's options in the bundle (``teacher_def`` without name/weights), resolved."""
    raw = parser.get(teacher_def_id)
    if not isinstance(raw, dict):
        return {}
    return {k: parser.get_parsed_content(f"{teacher_def_id}::{k}") for k in raw if k not in _META_KEYS}


def read_bundle(config_file: str | list[str], overrides: dict):
    """The bundle config (``monai.bundle.ConfigParser``) with ``overrides`` applied and its teacher enabled.

    ``teacher_def`` is disabled in the bundles when a feature cache is set (training never builds the teacher);
    here the teacher is what is run, so it is enabled.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_file[0] if isinstance(config_file, list) and len(config_file) == 1 else config_file)
    overrides = dict(overrides)
    teacher_def = parser.get(BUNDLE_IDS["teacher_def"])
    if isinstance(teacher_def, dict) and "_disabled_" in teacher_def:
        overrides[f"{BUNDLE_IDS['teacher_def']}::_disabled_"] = False  # disabled for training from the cache
    parser.update(overrides)
    return parser


def bundle_teacher(parser) -> dict:
    """The bundle's teacher as the bundle resolves it: ``{"name", "record", "options", "device", "build"}``.

    ``record`` is the :class:`~monai_rd.networks.WeightsRecord` of its ``teacher_weights`` spec (file, hf-hub:,
    imagenet, random; a missing file raises ``MissingWeightsError`` naming it), ``build()`` builds the teacher once
    (later calls return the same module), only when called.
    """
    from monai_rd.networks import check_teacher_weights

    name = parser.get_parsed_content(BUNDLE_IDS["teacher"])
    bundle_root = parser.get_parsed_content("bundle_root") if "bundle_root" in parser else None
    # a spec (file, hf-hub:, imagenet, random) -> the file actually loaded (None for random), as the bundle does
    record = check_teacher_weights(name, parser.get_parsed_content(BUNDLE_IDS["teacher_weights"]), bundle_root)
    built: dict = {}

    def build():  # built once, and only if some chunk needs it
        if "teacher" not in built:
            print(f"Loading teacher {name!r} ({record.path or 'random init'})", flush=True)
            built["teacher"] = parser.get_parsed_content(BUNDLE_IDS["teacher_def"], instantiate=True)
        return built["teacher"]

    device = parser.get_parsed_content(BUNDLE_IDS["device"]) if BUNDLE_IDS["device"] in parser else "cpu"
    return {"name": name, "record": record, "options": teacher_options(parser), "device": device, "build": build}


def run(args: argparse.Namespace) -> int:
    from monai.utils import set_determinism

    from monai_rd.data.feature_cache import FeatureCache

    overrides = {k: _value(v) for k, v in args.set}
    for name in ("dataset_dir", "output_dir", "image_size", "teacher", "teacher_weights", "seed"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = _value(value) if name in ("image_size", "seed", "teacher_weights") else value
    if args.feature_cache is not None:
        overrides[BUNDLE_IDS["feature_cache"]] = args.feature_cache
    parser = read_bundle(args.config_file, overrides)

    cache_id = BUNDLE_IDS["feature_cache"]
    cache_root = parser.get_parsed_content(cache_id) if cache_id in parser else None
    if not cache_root:
        raise SystemExit("No cache folder: pass --feature_cache <dir> (or set feature_cache in the config).")
    seed = parser.get_parsed_content(BUNDLE_IDS["seed"]) if BUNDLE_IDS["seed"] in parser else 0
    set_determinism(seed=seed)
    datalist = parser.get_parsed_content(BUNDLE_IDS["datalist"])
    teacher = bundle_teacher(parser)
    transforms = {"training": BUNDLE_IDS["train_transform"], "validation": BUNDLE_IDS["val_transform"]}

    for split in args.splits:
        cache = FeatureCache(
            os.path.join(cache_root, split), datalist[split], parser.get_parsed_content(transforms[split]),
            teacher["name"], teacher["record"].path, teacher["options"],
        )  # fmt: skip
        cache.build(
            teacher["build"], views=args.views if split == "training" else 1, dtype=args.dtype,
            batch_size=args.batch_size, chunk_size=args.chunk_size, num_workers=args.num_workers,
            device=teacher["device"], progress=not args.no_progress,
        )  # fmt: skip
        print(f"{split}: {len(datalist[split])} items x {cache.views} views, features {cache.feature_shape} "
              f"{cache.dtype} -> {cache.cache_dir}", flush=True)  # fmt: skip
    print(f"Train from it with: --feature_cache {cache_root}")
    return 0

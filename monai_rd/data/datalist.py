"""Seeded stratified splits (hold-out, three-way, k-fold) and MONAI datalist files, written and read here
(:func:`write_datalist`, :func:`read_datalist`; the bundles call the second as ``monai_rd.bundle.read_datalist``).

Every indexer builds its datalist with :func:`assign_splits`: ``training`` (fitting), ``validation`` (model
selection: the checkpoint a run keeps) and ``test`` (reported once, at the end, never seen before). The test split
is the dataset's official one where it has one, otherwise a seeded, stratified, grouped hold-out fixed by
``test_seed`` (independent of the training seed, so seeds and folds are scored on one test set).
:data:`SPLIT_PROTOCOLS` names the two protocols: ``holdout`` (the default, three disjoint splits) and
``paper_4to1`` (the paper's: 4:1 train/test, no separate validation, so ``validation`` *is* ``test`` and
selection happens on the reporting set; optimistic, kept to compare with the paper).
"""

from __future__ import annotations

import inspect
import json
import os
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from monai_rd.utils import atomic_write_json, sha256_json

__all__ = [
    "SPLIT_PROTOCOLS",
    "shortfall_message",
    "stratified_split",
    "kfold_split",
    "assign_splits",
    "check_split_options",
    "check_disjoint_splits",
    "write_datalist",
    "read_datalist",
    "SplitNotFoundError",
    "datalist_hash",
    "finalize_datalist",
]

#: split protocol name -> what it means (shown in tables and logged with every run)
SPLIT_PROTOCOLS = {
    "holdout": "training / validation (model selection) / test (reported): three disjoint splits",
    "paper_4to1": "the paper's protocol: 4:1 train/test, no separate validation (selection = reporting set)",
}


def _too_small(split: str, strata: Sequence[Hashable], groups: Sequence[Hashable], official: Sequence[str | None],
               split_protocol: str, val_fraction: float, test_fraction: float) -> dict:  # fmt: skip
    """Why ``split`` came out empty, as the datalist's JSON ``split_shortfall`` (see :func:`shortfall_message`)."""
    free = [i for i, o in enumerate(official) if o is None]  # items not in an official split: those divided here
    has_test, has_val = "test" in official, "validation" in official
    _, by_class = _group_classes(_pick(strata, free), _pick(groups, free))
    if split_protocol == "paper_4to1":
        carved = [] if has_test else ["test"]
    else:
        carved = [name for name, official_one in (("validation", has_val), ("test", has_test)) if not official_one]
    return {
        "split": split, "split_protocol": split_protocol, "grouped": len(set(groups)) < len(groups),
        "carved": carved, "official": [name for name, h in (("validation", has_val), ("test", has_test)) if h],
        "per_class": {str(label): len(by_class[label]) for label in sorted(by_class, key=str)},
        "val_fraction": val_fraction, "test_fraction": test_fraction,
    }  # fmt: skip


def shortfall_message(shortfall: Mapping, class_names: Sequence[str] | None = None) -> str:
    """The images or groups per class found and needed for a datalist's ``split_shortfall`` and the options that
    change it; ``class_names`` names class indices."""
    unit = "groups" if shortfall["grouped"] else "images"
    kind = "groups (lesions, patients or duplicate clusters; a group never straddles two splits)" if shortfall[
        "grouped"] else unit  # fmt: skip
    needed = 1 + len(shortfall["carved"])

    def name(label: str) -> str:
        return class_names[int(label)] if class_names and label.isdigit() and int(label) < len(class_names) else label

    counts = shortfall["per_class"]
    found = ", ".join(f"{name(label)}: {n}" for label, n in counts.items()) or "none"
    official = "".join(f"; the dataset's official {s} split is used as it is" for s in shortfall["official"])
    paper = "" if shortfall["split_protocol"] == "paper_4to1" else (
        f"; --split_protocol paper_4to1 (the paper's 4:1: training and test, no validation; needs "
        f"{1 if 'test' in shortfall['official'] else 2} per class)")  # fmt: skip
    return (
        f"split_protocol={shortfall['split_protocol']!r} takes at least one of each class's {kind} for each of "
        f"{', '.join(['training', *shortfall['carved']])}, so it needs at least {needed} {unit} per class{official}; "
        f"this dataset has at most {max(counts.values(), default=0)} ({found}). Options: add images (at least "
        f"{needed} {unit} per class){paper}; --val_fraction ({shortfall['val_fraction']}) and --test_fraction "
        f"({shortfall['test_fraction']}) set each split's share once a class has {needed} {unit}, but cannot make "
        "a split from fewer."
    )


def stratified_split(
    labels: Sequence[Hashable],
    val_fraction: float = 0.2,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list[int], list[int]]:
    """Indices of a seeded stratified train/validation split (4:1 by default), optionally group-aware.

    Without ``groups``, in each class ``round(n * val_fraction)`` items go to validation, at least one when
    the class has two or more items, so every class is seen on both sides (a single item stays in training).

    With ``groups`` (one id per item: a lesion, a patient, a cluster of duplicate images), whole groups are
    assigned to one side, so no group is ever split across training and validation. Each group is
    stratified by its most frequent label (ties broken by the label's string); in each class the shuffled
    groups that fit fill validation greedily up to ``round(n_items * val_fraction)`` items. A class with two
    or more groups always has at least one group on each side (the smallest group goes to validation when
    none fits).

    Args:
        labels: one hashable label (class index, name or a stratification key) per item.
        val_fraction: share of each class that goes to validation, in ``(0, 1)``.
        seed: the split seed; the same inputs and seed always give the same split.
        groups: optional group id per item (same length as ``labels``).

    Returns:
        ``(train_indices, val_indices)``, each sorted.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    if groups is not None:
        return _grouped_split(labels, groups, val_fraction, seed)
    by_class: dict[Hashable, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(by_class, key=str):
        idx = np.array(by_class[label])
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        n_val = min(max(n_val, 1), len(idx) - 1)  # a single item stays in training
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return sorted(train), sorted(val)


def _group_classes(labels: Sequence[Hashable], groups: Sequence[Hashable]) -> tuple[dict, dict]:
    """``(members: group -> item indices, by_class: label -> groups)``; a group's class is its most frequent label."""
    if len(groups) != len(labels):
        raise ValueError(f"groups has {len(groups)} entries but labels has {len(labels)}; give one group per item.")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    by_class: dict[Hashable, list[Hashable]] = defaultdict(list)
    for group in sorted(members, key=str):
        counts = Counter(labels[i] for i in members[group])
        top = max(counts.values())
        by_class[min((lab for lab, c in counts.items() if c == top), key=str)].append(group)
    return members, by_class


def kfold_split(
    labels: Sequence[Hashable],
    folds: int,
    fold: int,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list[int], list[int]]:
    """Indices ``(train, val)`` of fold ``fold`` of a seeded, stratified, grouped ``folds``-fold partition.

    Whole groups (default: one per item) are dealt to folds class by class (a group's class is its most frequent
    label): the shuffled groups of a class, largest first, each go to the fold holding the fewest items of that
    class so far (then the fewest items overall, then the lowest index). The ``folds`` validation sets partition
    the items; every item is validated exactly once over the folds, and no group straddles a fold boundary.

    Raises:
        ValueError: ``folds < 2``, ``fold`` outside ``[0, folds)``, or fewer groups than folds.
    """
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}.")
    if not isinstance(fold, int) or not 0 <= fold < folds:
        raise ValueError(f"fold must be an integer in [0, {folds}), got {fold!r}.")
    groups = list(range(len(labels))) if groups is None else list(groups)
    members, by_class = _group_classes(labels, groups)
    if len(members) < folds:
        raise ValueError(f"{len(members)} groups cannot fill {folds} folds; use fewer folds.")
    rng = np.random.default_rng(seed)
    assigned: dict[Hashable, int] = {}
    total = [0] * folds
    for label in sorted(by_class, key=str):
        class_groups = [by_class[label][k] for k in rng.permutation(len(by_class[label]))]
        class_groups.sort(key=lambda g: -len(members[g]))  # stable: ties keep the shuffled order
        in_class = [0] * folds
        for group in class_groups:
            k = min(range(folds), key=lambda f: (in_class[f], total[f], f))
            assigned[group] = k
            in_class[k] += len(members[group])
            total[k] += len(members[group])
    train = [i for i, g in enumerate(groups) if assigned[g] != fold]
    val = [i for i, g in enumerate(groups) if assigned[g] == fold]
    return train, val


def _grouped_split(
    labels: Sequence[Hashable], groups: Sequence[Hashable], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    members, by_class = _group_classes(labels, groups)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(by_class, key=str):
        class_groups = list(by_class[label])
        order = rng.permutation(len(class_groups))
        class_groups = [class_groups[k] for k in order]
        n_items = sum(len(members[g]) for g in class_groups)
        target = int(round(n_items * val_fraction))
        chosen: list[Hashable] = []
        n_val = 0
        for group in class_groups:
            if n_val >= target:
                break
            size = len(members[group])
            if n_val + size <= target:
                chosen.append(group)
                n_val += size
        if not chosen and len(class_groups) >= 2:  # no group fits: the smallest one (first in shuffled order)
            chosen = [min(class_groups, key=lambda g: len(members[g]))]
        if len(chosen) == len(class_groups) and len(class_groups) >= 2:
            chosen.pop()
        chosen_set = set(chosen)
        for group in class_groups:
            (val if group in chosen_set else train).extend(members[group])
    return sorted(train), sorted(val)


def _pick(seq: Sequence, idx: Sequence[int]) -> list:
    return [seq[i] for i in idx]


def assign_splits(
    items: Sequence[dict],
    strata: Sequence[Hashable],
    groups: Sequence[Hashable] | None = None,
    official: Sequence[str | None] | None = None,
    *,
    split_protocol: str = "holdout",
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    test_seed: int = 0,
    folds: int | None = None,
    fold: int | None = None,
) -> dict:
    """Put every item in ``training``, ``validation`` and ``test`` under ``split_protocol``.

    The keyword-only arguments are the *split options*: every indexer takes them as ``**split_options`` and passes
    them here unchanged (names checked early by :func:`check_split_options`), so they are documented only here.

    Args:
        items: the datalist entries of the whole dataset (official test and validation items included).
        strata: one stratification key per item (its class, or a finding for multi-label data).
        groups: one group id per item (patient, lesion, duplicate cluster, series); default each item its own.
            A group never straddles two splits: raised as an error when an official split would make it.
        official: per item ``"test"``, ``"validation"`` or ``None`` (free: training or, when split, validation);
            the dataset's own split files. Without any ``"test"`` item a hold-out test is carved.
        split_protocol: a key of :data:`SPLIT_PROTOCOLS`.

            - ``"holdout"``: ``test`` = the official test items, else ``test_fraction`` of the items (a grouped,
              stratified split seeded by ``test_seed``). ``validation`` = fold ``fold`` of a ``folds``-fold
              partition of the rest (official validation items included) when ``folds`` is given, else the
              official validation items, else ``val_fraction`` of all items taken from the rest (seeded by
              ``seed``).
            - ``"paper_4to1"``: ``test`` = the official test items, else ``val_fraction`` of the items (the
              paper's 4:1, seeded by ``test_seed``); ``training`` = everything else; ``validation`` is ``test``.
        val_fraction, test_fraction: shares of all items, each in ``(0, 1)``, summing below 1.
        seed: seed of the validation split (or of the fold partition).
        test_seed: seed of a carved test split; keep it fixed across seeds and folds.
        folds, fold: k-fold cross-validation over the non-test items (``holdout`` only); both or neither.

    Returns:
        ``{"training", "validation", "test", "split_protocol", "test_split": "official" | "held-out"}`` plus
        ``"folds"`` and ``"fold"`` under cross-validation, and ``"split_shortfall"`` (why, and what is needed:
        :func:`shortfall_message`) when a split came out empty. Each list keeps the order of ``items``.
    """
    if split_protocol not in SPLIT_PROTOCOLS:
        raise ValueError(f"split_protocol must be one of {sorted(SPLIT_PROTOCOLS)}, got {split_protocol!r}.")
    if (folds is None) != (fold is None):
        raise ValueError(f"give both folds and fold for cross-validation, or neither (got folds={folds}, fold={fold}).")
    if folds is not None and split_protocol != "holdout":
        raise ValueError(
            "k-fold cross-validation (folds/fold) needs split_protocol='holdout': the paper's 4:1 "
            "protocol has no validation split to rotate."
        )
    if not 0.0 < test_fraction < 1.0 or not 0.0 < val_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must lie in (0, 1) "
            "and sum to less than 1."
        )
    n = len(items)
    if len(strata) != n:
        raise ValueError(f"{len(strata)} strata for {n} items; give one per item.")
    groups = list(range(n)) if groups is None else list(groups)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} items; give one per item.")
    official = [None] * n if official is None else list(official)
    bad = sorted({o for o in official if o not in (None, "test", "validation")}, key=str)
    if bad:
        raise ValueError(f"official split names must be 'test', 'validation' or None, got {bad}.")

    def split_of(index: list[int], fraction: float, split_seed: int) -> tuple[list[int], list[int]]:
        rest, held = stratified_split(_pick(strata, index), fraction, split_seed, groups=_pick(groups, index))
        return _pick(index, rest), _pick(index, held)

    test = [i for i in range(n) if official[i] == "test"]
    test_split = "official" if test else "held-out"
    pool = [i for i in range(n) if official[i] is None]
    official_val = [i for i in range(n) if official[i] == "validation"]
    out: dict = {"split_protocol": split_protocol, "test_split": test_split}
    if split_protocol == "paper_4to1":
        if not test:
            pool, test = split_of(pool, val_fraction, test_seed)
        train, val = sorted(pool + official_val), test
    else:
        if not test:
            pool, test = split_of(pool, test_fraction, test_seed)
        if folds is not None:
            free = sorted(pool + official_val)
            rest, held = kfold_split(_pick(strata, free), folds, fold, seed, groups=_pick(groups, free))
            train, val = _pick(free, rest), _pick(free, held)
            out.update(folds=folds, fold=fold)
        elif official_val:
            train, val = pool, official_val
        else:
            share = val_fraction / (1.0 - (test_fraction if test_split == "held-out" else 0.0))
            train, val = split_of(pool, share, seed)
    empty = [name for name, index in (("training", train), ("validation", val), ("test", test)) if not index]
    if empty:  # refused by validate_datalist (the bundles' check), which names what is needed
        out["split_shortfall"] = _too_small(empty[0], strata, groups, official, split_protocol, val_fraction,
                                            test_fraction)  # fmt: skip
    pairs = [("training", train, "validation", val), ("training", train, "test", test)]
    if split_protocol != "paper_4to1":  # there validation *is* test
        pairs.append(("validation", val, "test", test))
    for name, a, other, b in pairs:
        shared = {groups[i] for i in a} & {groups[i] for i in b}
        if shared:
            raise ValueError(
                f"{len(shared)} group(s) (patient, lesion, duplicate cluster...) straddle {name} and {other}, "
                f"e.g. items {[items[i].get('image') for i in a if groups[i] in shared][:2]} and "
                f"{[items[i].get('image') for i in b if groups[i] in shared][:2]}: the official split files "
                "disagree with the grouping; fix them or index without them."
            )
    out.update(
        training=_pick(items, sorted(train)), validation=_pick(items, sorted(val)), test=_pick(items, sorted(test))
    )
    return out


def check_split_options(options: Mapping[str, object]) -> None:
    """Raise ``TypeError`` naming every key of ``options`` that is not a split option of :func:`assign_splits`.

    The indexers take the split options as ``**split_options`` and hand them to :func:`assign_splits`, whose
    signature and docstring are their one home; an indexer checks the names first so that a misspelt option fails
    before the whole dataset is read, not after.
    """
    params = inspect.signature(assign_splits).parameters.values()
    known = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"unknown split option(s) {unknown}; the split options are {known} (see assign_splits).")


def check_disjoint_splits(datalist: dict, group_key: str | None = "group") -> None:
    """Raise ``ValueError`` if a file (image and slice) or a ``group_key`` value is in two of the splits.

    ``validation`` and ``test`` may coincide under the ``paper_4to1`` protocol (and only then).
    """
    names = ("training", "validation", "test")
    missing = [k for k in names if k not in datalist]
    if missing:
        raise ValueError(f"the datalist lacks the split(s) {missing}; re-index it with this version of monai_rd.")
    paper = datalist.get("split_protocol") == "paper_4to1"
    keys = {"file": lambda item: (str(item.get("image")), item.get("slice", -1))}
    if group_key is not None:
        keys["group"] = lambda item: item.get(group_key)
    for a, b in (("training", "validation"), ("training", "test"), ("validation", "test")):
        if paper and (a, b) == ("validation", "test"):
            continue
        for what, key in keys.items():
            shared = ({key(i) for i in datalist[a]} - {None}) & {key(i) for i in datalist[b]}
            if shared:
                raise ValueError(f"{len(shared)} {what}(s) in both {a} and {b}, e.g. {sorted(shared, key=str)[:2]}.")


def write_datalist(datalist: dict, path: str | os.PathLike) -> str:
    """Write a MONAI datalist (``{"training": [...], "validation": [...], ...}``) atomically; returns the path."""
    return atomic_write_json(path, datalist)


def read_datalist(path: str | os.PathLike, key: str) -> list[dict]:
    """The ``key`` list (``"training"``, ``"validation"``, ``"test"``) of a datalist JSON, or SplitNotFoundError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Datalist {path!r} does not exist; run training first or pass --datalist_file.")
    with open(path, encoding="utf-8") as f:
        datalist = json.load(f)
    if key not in datalist or not isinstance(datalist[key], list):
        splits = sorted(k for k, v in datalist.items() if isinstance(v, list) and all(isinstance(i, dict) for i in v))
        raise SplitNotFoundError(
            f"Datalist {path!r} has no split {key!r} (its splits: {splits}). Choose one with --datalist_key, "
            "or re-run training so that the datalist is re-indexed with training/validation/test splits."
        )
    return datalist[key]


class SplitNotFoundError(KeyError):
    """A datalist without the requested split; the message names the split and the lists it has."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


def datalist_hash(datalist: dict) -> str:
    """A short content hash of a datalist, to name the exact split a run used."""
    return sha256_json(datalist)[:16]


def finalize_datalist(datalist: dict, datalist_file: str | os.PathLike | None = None) -> dict:
    """Add ``split_hash`` (of everything else in ``datalist``) and, if ``datalist_file`` is given, write it."""
    datalist.pop("split_hash", None)
    datalist["split_hash"] = datalist_hash(datalist)
    if datalist_file is not None:
        write_datalist(datalist, datalist_file)
    return datalist

"""Sample indices for methods whose loss keeps per-sample state (CRD's memory banks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monai_rd.utils.enums import RDKeys

__all__ = ["with_indices", "INDEX_KEY"]

INDEX_KEY = RDKeys.INDEX


def with_indices(data: Sequence[Mapping]) -> list[dict]:
    """Copies of the datalist items with ``"index": i`` (their position, ``0 .. len(data) - 1``) added.

    Raises if an item already has a different ``index`` (it would be silently replaced otherwise).
    """
    out = []
    for i, item in enumerate(data):
        if INDEX_KEY in item and item[INDEX_KEY] != i:
            raise ValueError(f"Datalist item {i} already has {INDEX_KEY!r} = {item[INDEX_KEY]!r}; rename that key.")
        out.append({**item, INDEX_KEY: i})
    return out

"""Near-duplicate image detection by difference hash, to keep copies of one image on one side of a split."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["difference_hash", "hamming_distances", "group_near_duplicates"]

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def difference_hash(path: str | os.PathLike, hash_size: int = 16) -> np.ndarray:
    """The difference hash (dHash) of an image: ``hash_size**2`` bits, packed into ``uint8`` ``[hash_size**2 / 8]``.

    The image is converted to 8-bit grey, resized (Lanczos) to ``(hash_size + 1) x hash_size`` pixels, and each
    bit says whether a pixel is brighter than its left neighbour. The hash ignores size, global brightness and
    contrast changes and survives re-compression, so exact copies have distance 0 and re-saved, resized or
    slightly edited copies a small Hamming distance, while unrelated images differ in about half the bits.
    """
    with Image.open(path) as im:
        grey = np.asarray(im.convert("L").resize((hash_size + 1, hash_size), Image.Resampling.LANCZOS), np.int16)
    bits = grey[:, 1:] > grey[:, :-1]
    return np.packbits(bits.reshape(-1))


def hamming_distances(hashes: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances ``[N, N]`` (int) between packed hashes ``[N, n_bytes]`` (uint8)."""
    hashes = np.asarray(hashes, dtype=np.uint8)
    out = np.zeros((len(hashes), len(hashes)), dtype=np.int64)
    for i in range(len(hashes)):
        out[i] = _POPCOUNT[np.bitwise_xor(hashes, hashes[i])].sum(axis=1)
    return out


def group_near_duplicates(paths: Sequence[str | os.PathLike], max_distance: int = 20, hash_size: int = 16) -> list[int]:
    """Cluster images whose difference hashes differ in at most ``max_distance`` bits (transitively).

    Args:
        paths: the image files.
        max_distance: largest Hamming distance (out of ``hash_size**2`` bits) between near-duplicates; 0 keeps
            only pixel-identical thumbnails together.
        hash_size: side of the hash grid (see :func:`difference_hash`).

    Returns:
        one group id per path: the index of the group's first member, so singletons have their own index. An
        image that cannot be read is a singleton (the datalist validation names it or skips it).
    """
    if not paths:
        return []
    hashes, readable = [], []
    for p in paths:
        try:
            hashes.append(difference_hash(p, hash_size))
            readable.append(True)
        except (OSError, SyntaxError, ValueError):  # unreadable: its own group; datalist validation reports it
            hashes.append(np.zeros((hash_size * hash_size + 7) // 8, np.uint8))
            readable.append(False)
    hashes = np.stack(hashes)
    parent = list(range(len(paths)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(paths)):
        if not readable[i]:
            continue
        dist = _POPCOUNT[np.bitwise_xor(hashes[i + 1 :], hashes[i])].sum(axis=1)
        for j in np.nonzero((dist <= max_distance) & np.asarray(readable[i + 1 :], bool))[0] + i + 1:
            ri, rj = find(i), find(int(j))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(len(paths))]

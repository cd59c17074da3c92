"""Difference hash and near-duplicate grouping, on fabricated exact, near and unrelated images."""

import numpy as np
from PIL import Image

from monai_rd.data import difference_hash, group_near_duplicates, hamming_distances


def _texture(seed, size=96):
    rng = np.random.default_rng(seed)
    x = rng.random((size // 8, size // 8))
    return (np.kron(x, np.ones((8, 8))) * 200 + rng.random((size, size)) * 30).astype(np.uint8)


def test_difference_hash_matches_definition(tmp_path):
    pixels = _texture(0)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    small = np.asarray(Image.fromarray(pixels).resize((17, 16), Image.Resampling.LANCZOS), dtype=np.int16)
    expected = np.packbits((small[:, 1:] > small[:, :-1]).reshape(-1))
    np.testing.assert_array_equal(difference_hash(tmp_path / "a.png"), expected)


def test_hamming_distances_against_bit_count():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (5, 32), dtype=np.uint8)
    bits = np.unpackbits(hashes, axis=1).astype(int)
    expected = np.abs(bits[:, None, :] - bits[None, :, :]).sum(-1)
    np.testing.assert_array_equal(hamming_distances(hashes), expected)


def test_exact_and_near_duplicates_grouped_unrelated_not(tmp_path):
    a, b = _texture(1), _texture(2)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(a).save(tmp_path / "a_copy.png")  # exact
    near = np.asarray(Image.fromarray(a).resize((120, 120), Image.Resampling.BILINEAR), dtype=np.int16) + 12
    Image.fromarray(np.clip(near, 0, 255).astype(np.uint8)).convert("RGB").save(tmp_path / "a_near.jpg", quality=85)
    Image.fromarray(b).save(tmp_path / "b.png")
    paths = [tmp_path / n for n in ("a.png", "b.png", "a_copy.png", "a_near.jpg")]
    h = np.stack([difference_hash(p) for p in paths])
    d = hamming_distances(h)
    assert d[0, 2] == 0 and d[0, 3] <= 20 and d[0, 1] > 60
    assert group_near_duplicates(paths) == [0, 1, 0, 0]
    assert group_near_duplicates(paths, max_distance=0) == [0, 1, 0, 3]


def test_grouping_is_transitive(tmp_path):
    base = _texture(3).astype(np.int16)
    for k in range(3):  # a chain of small edits
        edited = base.copy()
        edited[: 12 * k, :] = 255 - edited[: 12 * k, :]
        Image.fromarray(np.clip(edited, 0, 255).astype(np.uint8)).save(tmp_path / f"{k}.png")
    paths = [tmp_path / f"{k}.png" for k in range(3)]
    d = hamming_distances(np.stack([difference_hash(p) for p in paths]))
    limit = int(max(d[0, 1], d[1, 2]))
    assert d[0, 2] > limit  # 0 and 2 only meet through 1
    assert group_near_duplicates(paths, max_distance=limit) == [0, 0, 0]

"""Token/map/vector layouts and spatial pooling against NumPy."""

import numpy as np
import pytest
import torch

from monai_rd.losses.feature_shapes import as_shape_list, map_shape, pool_to_common, to_map, to_vector
from tests.helpers.kd_references import block_mean, tokens_to_map


def test_tokens_with_cls_become_maps():
    x = np.random.default_rng(0).normal(size=(2, 17, 5))
    got = to_map(torch.tensor(x), "teacher").numpy()  # 17 = 1 CLS + 4 x 4
    np.testing.assert_array_equal(got, tokens_to_map(x, 1))
    # patch token k sits at row k // 4, column k % 4
    assert got[1, 3, 2, 1] == x[1, 1 + 2 * 4 + 1, 3]
    np.testing.assert_array_equal(to_map(torch.tensor(x[:, 1:]), "t").numpy(), tokens_to_map(x, 1))


def test_explicit_prefix_tokens():
    x = torch.randn(1, 4 + 9, 3)  # e.g. CLS + 3 register tokens + 3 x 3 patches
    assert to_map(x, "t", num_prefix_tokens=4).shape == (1, 3, 3, 3)
    with pytest.raises(ValueError, match=r"\(1, 13, 3\).*0 or 1"):  # auto-detection only tries 0 and 1
        to_map(x, "t")
    assert map_shape((13, 3), "t", num_prefix_tokens=4) == (3, 3, 3)


def test_non_square_tokens_refused_naming_the_shape():
    with pytest.raises(ValueError, match=r"\(2, 7, 5\).*num_prefix_tokens"):
        to_map(torch.randn(2, 7, 5), "teacher")
    with pytest.raises(ValueError, match=r"\(50, 8\)"):
        map_shape((50, 8), "teacher", num_prefix_tokens=0)
    with pytest.raises(ValueError, match="5 dims|not supported"):
        to_map(torch.randn(1, 2, 3, 4, 5), "student")


def test_vectors_and_shapes():
    assert to_map(torch.randn(3, 7), "s").shape == (3, 7, 1, 1)
    assert map_shape((7,)) == (7, 1, 1) and map_shape((4, 2, 2)) == (4, 2, 2)
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 4))
    np.testing.assert_allclose(to_vector(torch.tensor(x)).numpy(), x.mean(axis=(2, 3)))
    assert as_shape_list((3, 4, 4)) == [(3, 4, 4)]
    assert as_shape_list([(3, 4, 4), (8,)]) == [(3, 4, 4), (8,)]


def test_pool_to_common_is_block_mean_of_the_larger():
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(2, 5, 2, 4))
    ps, pt = pool_to_common(torch.tensor(s), torch.tensor(t))
    # common size is the per-dimension minimum (2, 4): the student is pooled, the teacher only in no dimension
    np.testing.assert_allclose(ps.numpy(), block_mean(s, 2, 4), atol=1e-12)
    np.testing.assert_array_equal(pt.numpy(), t)
    with pytest.raises(ValueError, match="batch sizes"):
        pool_to_common(torch.randn(2, 1, 2, 2), torch.randn(3, 1, 2, 2))

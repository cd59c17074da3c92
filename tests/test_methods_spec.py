"""Every registered method builds what it built before the registry became one spec per method (issue 27, item 3).

``tests/method_fingerprints.json`` was recorded from the five side tables' registry; each case here rebuilds a
method (every method at its defaults, then the variants of ``VARIANTS``) from the same seeded networks and
compares modules, state-dict keys and shapes, initial values, trainable parameters and their groups, loss weights,
``info``, loss attributes and the loss terms on a fixed batch (see ``tests/method_fingerprints.py``).
"""

import json

import pytest

from monai_rd.methods import METHODS
from tests import method_fingerprints as mf

with open(mf.GOLDEN) as _f:
    GOLDEN = json.load(_f)


@pytest.fixture(scope="module")
def networks():
    return mf.networks()


def test_the_registry_holds_the_recorded_methods():
    assert sorted(METHODS.names()) == sorted(GOLDEN["methods"])
    assert sorted(c for c, _, _ in mf.cases(METHODS.names())) == sorted(GOLDEN["cases"])


@pytest.mark.parametrize("name", sorted(GOLDEN["methods"]))
def test_metadata_and_deployable_are_unchanged(name):
    assert mf.close(mf.metadata(name), GOLDEN["methods"][name], name) == []


@pytest.mark.parametrize(
    "case,method,kwargs", mf.cases(GOLDEN["methods"]), ids=lambda v: v if isinstance(v, str) else ""
)
def test_each_method_builds_what_it_built_before(case, method, kwargs, networks):
    teacher, vit = networks
    assert mf.close(mf.fingerprint(case, method, kwargs, teacher, vit), GOLDEN["cases"][case], case) == []


def test_derived_tables_are_unchanged():
    from monai_rd.methods import FEATURE_KD_WEIGHTS
    from monai_rd.methods.registry import REFERENCE_LAYERS

    assert mf._plain(FEATURE_KD_WEIGHTS) == GOLDEN["feature_kd_weights"]
    assert mf._plain(REFERENCE_LAYERS) == GOLDEN["reference_layers"]

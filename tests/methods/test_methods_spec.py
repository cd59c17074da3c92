"""Every registered method builds what it built before the registry became one spec per method (issue 27, item 3).

``tests/helpers/method_fingerprints.json`` was recorded from the five side tables' registry; each case here rebuilds a
method (every method at its defaults, then the variants of ``VARIANTS``) from the same seeded networks and
compares modules, state-dict keys and shapes, initial values, trainable parameters and their groups, loss weights,
``info``, loss attributes and the loss terms on a fixed batch (see ``tests/helpers/method_fingerprints.py``).
"""

import json

import pytest

from monai_rd.methods import METHODS
from tests.helpers import method_fingerprints as mf

with open(mf.GOLDEN) as _f:
    GOLDEN = json.load(_f)


@pytest.fixture(scope="module")
def networks():
    return mf.networks()


def test_the_registry_holds_the_recorded_methods():
    assert sorted(METHODS.names()) == sorted(GOLDEN["methods"])
    assert sorted(c for c, _, _ in mf.cases(METHODS.names())) == sorted(GOLDEN["cases"])


@pytest.mark.parametrize("name", sorted(GOLDEN["methods"]))
def test_each_method_builds_what_it_built_before(name, networks):
    """At its defaults and in each of its variants; its metadata and deployable too; and its registration says
    what it builds."""
    teacher, vit = networks
    diffs = mf.close(mf.metadata(name), GOLDEN["methods"][name], name)
    for case, method, kwargs in mf.cases([name]):
        if method == name:
            diffs += mf.close(mf.fingerprint(case, method, kwargs, teacher, vit), GOLDEN["cases"][case], case)
    assert diffs == []
    spec, built = METHODS[name], GOLDEN["cases"][name]
    assert spec.name == name and spec.doc
    assert (built["stage1"] is not None) == (spec.stage1 == "always")  # "optional": none at the defaults
    assert built["loss_weights"] == mf._plain(spec.default_weights)
    assert spec.deploys_student == GOLDEN["methods"][name]["deploys_student"]
    assert (spec.reference_layers == "pooled") == built["sample_indices"]


def test_derived_tables_are_unchanged():
    from monai_rd.methods import FEATURE_KD_WEIGHTS
    from monai_rd.methods.registry import REFERENCE_LAYERS

    assert mf._plain(FEATURE_KD_WEIGHTS) == GOLDEN["feature_kd_weights"]
    assert mf._plain(REFERENCE_LAYERS) == GOLDEN["reference_layers"]


def test_an_unknown_option_is_refused_by_name_listing_what_the_method_takes():
    from monai_rd.methods import build_method
    from monai_rd.networks import StudentClassifier

    student = StudentClassifier("resnet18", 3)
    msg = r"method 'kd' has no option 'kd_wieght' \(did you mean 'kd_weight'\?\); its method_options are \['ce_weight', 'kd_weight'\]"
    with pytest.raises(TypeError, match=msg):
        build_method("kd", None, student, 3, teacher_feature_shape=(512,), kd_wieght=2.0)
    # RD's bundle arguments are listed where RD is asked for an option it lacks
    with pytest.raises(TypeError, match=r"has no option 'weight'.*cka_memory.*bundle arguments.*teacher_warmup"):
        build_method("rd", None, student, 3, teacher_feature_shape=(512,), weight=2.0)
    # another method's option is refused too; RD's bundle arguments, which a bundle passes to every method, are not
    with pytest.raises(TypeError, match="method 'student' has no option 'co_training'; its method_options are none"):
        build_method("student", None, student, 3, co_training=False)
    assert build_method("student", None, student, 3, teacher_warmup=True, reprogrammer_budget=None).stage1 is None
    with pytest.raises(ValueError, match="method 'hint': feature_layers is one of"):
        build_method("hint", None, student, 3, feature_layers="all")


def test_one_registration_adds_a_method_and_every_view_follows():
    """Adding a method is one edit: its registration. needs_teacher, deploys_student, the views and the option
    checks read it; a name is registered once."""
    from monai_rd.methods import (
        FEATURE_KD_WEIGHTS,
        REFERENCE_LAYERS,
        TEACHERLESS_METHODS,
        Method,
        Option,
        build_method,
        deploys_student,
        method_options,
        needs_teacher,
    )
    from monai_rd.methods.registry import FEATURE_OPTIONS, _feature, _probe_loss
    from monai_rd.networks import StudentClassifier
    from monai_rd.networks.nets.method_nets import StudentNet

    def _toy(spec, ctx, scale):
        """A toy: the student alone, its CE scaled."""
        return Method(spec.name, StudentNet(ctx.student), _probe_loss(ctx.multi_label), {"ce_student": scale})

    METHODS.register("toy", _toy, uses_teacher=False, options=(Option("scale", 1.0, check=lambda v: v > 0,
                                                                      expect="must be > 0"),))  # fmt: skip
    METHODS.register(
        "toy_at", _feature, reference_layers="last", default_weights={"ce_student": 1.0, "toy_at": 2.0},
        options=FEATURE_OPTIONS,
    )  # fmt: skip
    try:
        assert "toy" in METHODS.names() and "toy" in TEACHERLESS_METHODS and not needs_teacher("toy")
        assert deploys_student("toy") and method_options("toy") == ["scale"]
        assert FEATURE_KD_WEIGHTS["toy_at"] == 2.0 and REFERENCE_LAYERS["toy_at"] == "last"
        built = build_method("toy", None, StudentClassifier("resnet18", 3), 3, scale=0.5)
        assert built.loss_weights == {"ce_student": 0.5}
        with pytest.raises(ValueError, match="method 'toy': scale must be > 0, got 0"):
            build_method("toy", None, StudentClassifier("resnet18", 3), 3, scale=0)
        with pytest.raises(KeyError, match="already registered"):
            METHODS.register("toy", _toy)
        with pytest.raises(TypeError, match=r"method 'toy2': its builder takes \['scale'\].*options are \[\]"):
            METHODS.register("toy2", _toy)  # an option the registration forgot
    finally:
        METHODS._specs.pop("toy", None)
        METHODS._specs.pop("toy_at", None)
        METHODS._specs.pop("toy2", None)
    assert "toy" not in TEACHERLESS_METHODS and "toy_at" not in FEATURE_KD_WEIGHTS
    with pytest.raises(KeyError, match="Unknown method 'toy'"):
        needs_teacher("toy")

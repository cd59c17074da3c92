"""The README's figures are the ones their commands print: the test counts (``pytest --collect-only``, from this
session's own collection) and the demo's figures (``monai-rd demo``, recorded in
benchmarks/results/demo_busi_seed0.json for the demo's current defaults)."""

import json
import os
import re

import pytest

from tests.conftest import COLLECTION, REPO

README = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
DEMO_RECORD = os.path.join(REPO, "benchmarks", "results", "demo_busi_seed0.json")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_readmes_test_counts_are_current():
    match = re.search(r"The suite has about ([\d,]+) tests, ([\d,]+) of them slow \(`pytest --collect-only -q \| "
                      r"tail -1` and\s+`pytest --collect-only -q -m slow \| tail -1`", README)  # fmt: skip
    assert match, "the README no longer states the test counts with their commands"
    if not COLLECTION.get("whole"):
        pytest.skip("the counts are compared on a run that collects every tests/**/test_*.py (the fast tier does)")
    for stated, actual in ((_number(match.group(1)), COLLECTION["total"]), (_number(match.group(2)),
                                                                            COLLECTION["slow"])):  # fmt: skip
        assert abs(stated - actual) <= 0.03 * actual, (
            f"README.md says {stated} tests where `pytest --collect-only` collects {actual}: update the README"
        )


def test_the_readmes_demo_figures_are_the_recorded_run_of_the_current_defaults():
    from monai_rd.experiments.demo import DemoSettings

    record = json.load(open(DEMO_RECORD))
    # the record is a run of today's defaults: a changed default makes it (and the README) stale
    assert {**record["settings"], "workdir": "rd_demo"} == DemoSettings(workdir="rd_demo")._asdict(), (
        f"monai-rd demo's defaults changed: rerun it and replace {DEMO_RECORD} and the README's demo figures"
    )
    teacher, runs = record["teacher"], record["runs"]
    expected = (f"teacher pretrained in {teacher['pretrain_seconds']:.0f} s to {100 * teacher['source_accuracy']:.1f} % "
                f"on its 6 source\nclasses, student alone {100 * runs['student_only']['accuracy']:.1f} %, RD "
                f"{100 * runs['rd']['accuracy']:.1f} % held-out (chance 33.3 %), {record['seconds']:.0f} s in all.")  # fmt: skip
    assert expected in README, expected

"""Compare the slow tier's wall time with its budget (pyproject.toml, [tool.monai_rd.ci]) and name the slowest tests.

    python .ci/budget.py --seconds <slow tier wall time> --junitxml <pytest --junitxml file>

Prints one line when within budget; a ``WARNING:`` line and the slowest tests when over. Exit status 0 either way
(CI keeps landing on a noisy machine); 1 when the budget or the JUnit file cannot be read.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def slowest(junitxml: str, n: int = 10) -> list[tuple[float, str]]:
    """The ``n`` longest test cases of a JUnit file, as (seconds, node id), longest first."""
    cases = []
    for case in ET.parse(junitxml).getroot().iter("testcase"):
        node = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        cases.append((float(case.get("time", 0.0)), node))
    return sorted(cases, reverse=True)[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True, help="the slow tier's wall time")
    parser.add_argument("--junitxml", required=True, help="the slow tier's pytest --junitxml file")
    args = parser.parse_args(argv)
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        budget = tomllib.load(f)["tool"]["monai_rd"]["ci"]["slow_tier_budget_s"]
    if not os.path.isfile(args.junitxml):
        print(f"ERROR: {args.junitxml} does not exist: the slow tier did not write its report", file=sys.stderr)
        return 1
    if args.seconds <= budget:
        print(f"slow tier: {args.seconds:.0f} s, within its budget of {budget} s (pyproject.toml [tool.monai_rd.ci])")
        return 0
    print(f"WARNING: the slow tier took {args.seconds:.0f} s, over its budget of {budget} s "
          f"(pyproject.toml [tool.monai_rd.ci]): make these faster or merge them before adding more")  # fmt: skip
    for seconds, node in slowest(args.junitxml):
        print(f"WARNING:   {seconds:7.1f} s  {node}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

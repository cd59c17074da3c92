"""The README is a front door (at most 200 lines, results in docs/results.md) and every relative link in it and in
docs/*.md reaches a file that exists, and a heading that exists where it names one (GitHub's anchor rule)."""

import glob
import os
import re

import pytest

from tests.conftest import REPO

DOCS = [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: str) -> set[str]:
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # a '#' in a code block is not a heading
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_github_anchor_rule_on_known_headings():
    assert github_anchor("RD against the student alone, by budget and training-set size") == (
        "rd-against-the-student-alone-by-budget-and-training-set-size"
    )
    assert github_anchor("Which teacher? `monai-rd rank-teachers`") == "which-teacher-monai-rd-rank-teachers"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: os.path.relpath(p, REPO))
def test_relative_links_reach_a_file_and_a_heading(doc):
    text = open(doc, encoding="utf-8").read()
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file_part, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(doc), file_part)) if file_part else doc
        if not os.path.exists(path):
            bad.append(f"{target}: no such file {os.path.relpath(path, REPO)}")
        elif anchor and path.endswith(".md") and anchor not in anchors(path):
            bad.append(f"{target}: no heading with anchor #{anchor} in {os.path.relpath(path, REPO)}")
    assert not bad, f"{os.path.relpath(doc, REPO)}: " + "; ".join(bad)


def test_the_readme_is_a_front_door():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert len(readme.splitlines()) <= 200, "README.md is over 200 lines: move results and details into docs/"
    for section in ("## Set-up", "## Try it without data", "## Train on BUSI", "## Evaluate, predict, serve"):
        assert section in readme, f"README.md lost its section {section!r}"
    assert "(docs/results.md)" in readme, "README.md must link the results page"

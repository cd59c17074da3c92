"""The bundles are rendered from one template (bundles/_template): a checked-in bundle that differs from its
rendering fails here, a shared edit is one edit, and the template is never a bundle."""

import json
import shutil

import pytest

from monai_rd.bundle import bundle_names
from monai_rd.bundle.render import (
    PLACEHOLDER,
    SpecError,
    apply_patch,
    check_bundles,
    fill_placeholders,
    format_json,
    render_bundle,
    render_bundles,
    spec_names,
    template_dir,
)
from monai_rd.cli import main
from tests.conftest import BUNDLES


def _copy_template(tmp_path):
    return shutil.copytree(template_dir(BUNDLES), tmp_path / "_template")


def test_every_checked_in_bundle_is_its_rendering():
    """Edit bundles/_template, then run `monai-rd render-bundles`: never edit a rendered file by hand."""
    assert check_bundles(BUNDLES) == []


def test_the_template_renders_exactly_the_bundles_and_is_not_one():
    assert spec_names(template_dir(BUNDLES)) == bundle_names()
    assert "_template" not in bundle_names() and len(bundle_names()) == 7
    for name in bundle_names():  # what a model-zoo folder holds, every bundle alike (rd_mosmed has its README)
        files = set(render_bundle(name, template_dir(BUNDLES)))
        assert {"configs/train.json", "configs/evaluate.json", "configs/inference.json", "configs/metadata.json",
                "configs/multi_gpu_train.json", "configs/logging.conf", "docs/README.md", "LICENSE",
                "large_files.yml"} == files, name  # fmt: skip
        text = "".join(render_bundle(name, template_dir(BUNDLES)).values())
        assert not PLACEHOLDER.search(text) and "_template" not in text, name  # self-contained


def test_a_shared_edit_is_one_edit(tmp_path):
    """One edit of the skeleton's train.json, LICENSE and README reaches all seven bundles."""
    template = _copy_template(tmp_path)
    train = template / "bundle" / "configs" / "train.json"
    config = json.loads(train.read_text())
    config["weight_decay"] = 0.05
    config["train"]["handlers"].insert(0, {"_target_": "monai_rd.handlers.EpochSeed", "seed": "@seed"})
    train.write_text(format_json(config))
    for rel in ("LICENSE", "docs/README.md"):
        path = template / "bundle" / rel
        path.write_text(path.read_text() + "\nOne more shared line.\n")
    out = tmp_path / "bundles"
    changed = render_bundles(out, template)
    for name in bundle_names():
        rendered = json.loads((out / name / "configs" / "train.json").read_text())
        assert rendered["weight_decay"] == 0.05, name
        assert rendered["train"]["handlers"][0]["_target_"] == "monai_rd.handlers.EpochSeed", name
        # patches name list items by _target_: rd_chestxray's removed BestModelReport is still the one removed
        targets = [h["_target_"] for h in rendered["train"]["handlers"] if isinstance(h, dict)]  # not "@id" entries
        assert ("monai_rd.handlers.BestModelReport" in targets) == (name != "rd_chestxray"), name
        for rel in ("LICENSE", "docs/README.md"):
            assert (out / name / rel).read_text().endswith("One more shared line.\n"), (name, rel)
    assert render_bundles(out, template) == [] and len(changed) == 9 * 7  # deterministic: a second run writes none


def test_check_names_each_differing_file_and_render_fixes_it(tmp_path, capsys):
    bundles = tmp_path / "bundles"
    shutil.copytree(BUNDLES, bundles, ignore=shutil.ignore_patterns("outputs", "models", "eval"))
    train = bundles / "rd_isic" / "configs" / "train.json"
    config = json.loads(train.read_text())
    config["learning_rate"] = 0.1  # a hand edit of one rendered bundle
    train.write_text(json.dumps(config))
    (bundles / "rd_btc" / "configs" / "stale.json").write_text("{}")
    (bundles / "rd_busi" / "LICENSE").unlink()
    assert main(["render-bundles", "--check", "--bundles", str(bundles)]) == 1
    err = capsys.readouterr().err
    assert "rd_isic/configs/train.json differs from its rendering" in err
    assert "rd_btc/configs/stale.json is not written by the template" in err
    assert "rd_busi/LICENSE is missing" in err and "3 file(s) differ" in err
    assert main(["render-bundles", "--bundles", str(bundles)]) == 0
    assert "wrote rd_isic/configs/train.json" in capsys.readouterr().out
    assert json.loads(train.read_text())["learning_rate"] == 0.005  # the spec's value is back
    (bundles / "rd_btc" / "configs" / "stale.json").unlink()
    assert main(["render-bundles", "--check", "--bundles", str(bundles)]) == 0


def test_a_bundle_without_a_spec_is_named(tmp_path):
    bundles = tmp_path / "bundles"
    shutil.copytree(BUNDLES, bundles, ignore=shutil.ignore_patterns("outputs", "models", "eval"))
    shutil.copytree(bundles / "rd_busi", bundles / "rd_new")
    assert check_bundles(bundles) == [
        f"rd_new: a bundle folder with no spec (add {bundles}/_template/specs/rd_new/spec.json)"
    ]


def test_a_spec_error_writes_nothing(tmp_path):
    template = _copy_template(tmp_path)
    spec = template / "specs" / "rd_mosmed" / "spec.json"
    data = json.loads(spec.read_text())
    data["configs"]["train.json"].append({"op": "replace", "id": "no_such_id", "value": 1})
    spec.write_text(json.dumps(data))
    out = tmp_path / "bundles"
    with pytest.raises(SpecError, match="rd_mosmed/configs/train.json: id 'no_such_id': no key 'no_such_id'"):
        render_bundles(out, template)
    assert not out.exists()  # every bundle is rendered before any file is written


def test_patch_operations():
    config = {"a": 1, "b": {"c": [{"_target_": "X", "k": 1}, {"_target_": "Y"}]}}
    out = apply_patch(
        config,
        [
            {"op": "add", "id": "z", "value": 0, "after": "a"},
            {"op": "add", "id": "first", "value": 0, "after": None},
            {"op": "replace", "id": "b::c::X::k", "value": 2},
            {"op": "remove", "id": "b::c::1"},
            {"op": "add", "id": "b::c::0", "value": "s"},
        ],
    )
    assert out == {"first": 0, "a": 1, "z": 0, "b": {"c": ["s", {"_target_": "X", "k": 2}]}}
    assert list(out) == ["first", "a", "z", "b"] and config["b"]["c"][0]["k"] == 1  # the input is not changed
    for op, match in [
        ({"op": "replace", "id": "q", "value": 1}, "no key 'q'"),
        ({"op": "add", "id": "a", "value": 1}, "already exists"),
        ({"op": "remove", "id": "b::c::Z"}, "0 items with _target_ 'Z'"),
        ({"op": "remove", "id": "b::c::5"}, "out of range"),
        ({"op": "move", "id": "a"}, "is not an operation"),
        ({"op": "add", "id": "y", "value": 1, "afer": "a"}, "is not an operation"),  # a misspelt key is refused
    ]:
        with pytest.raises(SpecError, match=match):
            apply_patch(config, [op])


def test_placeholders():
    values = {"name": "rd_x", "n": 3}
    assert fill_placeholders({"k": ["<<n>>", "$f('<<name>>')"]}, values) == {"k": [3, "$f('rd_x')"]}
    with pytest.raises(SpecError, match="no value for <<dataset>>"):
        fill_placeholders("<<dataset>>", values)
    with pytest.raises(SpecError, match="must be a string"):
        fill_placeholders("size <<n>>", values)


def test_unused_values_are_refused(tmp_path):
    template = _copy_template(tmp_path)
    spec = template / "specs" / "rd_isic" / "spec.json"
    data = json.loads(spec.read_text())
    data["values"]["dataset_dri"] = "/typo"
    spec.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=r"values \['dataset_dri'\] fill no <<mark>>"):
        render_bundle("rd_isic", template)


def test_format_json_is_deterministic_and_fits_the_line():
    obj = {"short": {"a": [1, 2]}, "long": {f"key{i}": "x" * 20 for i in range(6)}, "empty": {}}
    text = format_json(obj)
    assert json.loads(text) == obj and format_json(json.loads(text)) == text
    assert '    "short": {"a": [1, 2]},' in text and '        "key0": "xxxxxxxxxxxxxxxxxxxx",' in text
    assert all(len(line) <= 120 for line in text.splitlines())

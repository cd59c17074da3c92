"""Model cards: rendered from the executed config of the run they describe (written by hand here)."""

import json

import pytest

from monai_rd.deploy import PyfuncServing
from monai_rd.deploy.model_card import MISSING, recipe_table, render_card, run_values


def test_recipe_is_the_executed_configs_values(tmp_path):
    config = {"teacher": "pmc_clip_rn50", "loss_schedule": "paper", "loss_weights": {"cka": 0.0},
              "teacher_trains_head": True, "reprogrammer_budget": None, "split_protocol": "paper_4to1",
              "max_epochs": 240, "network_def": "$monai_rd.networks.build(@student)", "device": "@device"}  # fmt: skip
    path = tmp_path / "executed_config.json"
    path.write_text(json.dumps(config))
    values = run_values(path)
    assert "network_def" not in values and "device" not in values  # expressions are not values that ran
    table = recipe_table(values).splitlines()
    assert table[:2] == ["| setting | value |", "|---|---|"]
    assert table[2:] == [
        "| `teacher` | `pmc_clip_rn50` |",
        "| `loss_schedule` | `paper` |",
        '| `loss_weights` | `{"cka": 0.0}` |',
        "| `teacher_trains_head` | `true` |",
        "| `reprogrammer_budget` | `null` |",
        "| `max_epochs` | `240` |",
        "| `split_protocol` | `paper_4to1` |",
    ]
    assert recipe_table({}) == MISSING
    card = render_card("Teacher {{teacher}}\n{{recipe}}\n{{metrics}}", values, {"test_accuracy": 0.5})
    assert card.startswith("Teacher pmc_clip_rn50\n| setting | value |") and "| test_accuracy | 0.5000 |" in card


def test_serving_renders_the_card_from_the_run(tmp_path):
    template = tmp_path / "README.md"
    template.write_text(
        "teacher {{teacher}}; schedule {{loss_schedule}}; source {{teacher_weights_source}}\n{{recipe}}"
    )
    config = tmp_path / "executed_config.json"
    config.write_text(json.dumps({"teacher": "radimagenet_resnet50", "loss_schedule": "warmup"}))
    serving = PyfuncServing(None, ["a", "b"], 32, card=template, executed_config=config)
    card = serving.render_card({}, teacher_weights_source="file")
    assert card.startswith("teacher radimagenet_resnet50; schedule warmup; source file")
    assert "| `teacher_weights_source` | `file` |" in card
    config.unlink()
    with pytest.raises(FileNotFoundError, match="executed_config.json"):
        serving.render_card({})

"""PredictionCSVWriter on a real Ignite engine: one row per item, and never a label on a NaN prediction."""

import csv

import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from monai_rd.handlers import PredictionCSVWriter

CLASSES = ["a", "b", "c"]


def _engine(probs):
    """An engine whose iteration ``i`` outputs one decollated item: file ``img<i>.png`` with ``probs[i]``."""

    def step(engine, i):
        image = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": f"/in/img{i}.png"})
        return [{"image": image, "pred": torch.tensor(probs[i])}]

    return Engine(step)


def test_rows_hold_the_probabilities_and_the_arg_max_label(tmp_path):
    probs = [[0.2, 0.7, 0.1], [0.5, 0.1, 0.4]]
    engine = _engine(probs)
    PredictionCSVWriter(str(tmp_path / "p.csv"), CLASSES).attach(engine)
    engine.run(range(2), max_epochs=1)
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["file"] for r in rows] == ["/in/img0.png", "/in/img1.png"]
    assert [r["predicted_label"] for r in rows] == ["b", "a"]
    assert [float(rows[0][f"prob_{c}"]) for c in CLASSES] == pytest.approx(probs[0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_prediction_stops_before_any_row_is_written(tmp_path, bad):
    engine = _engine([[0.2, 0.7, 0.1], [bad, 0.1, 0.4]])
    PredictionCSVWriter(str(tmp_path / "p.csv"), CLASSES).attach(engine)
    with pytest.raises(FloatingPointError, match=r"'/in/img1.png'.*NaN/Inf"):
        engine.run(range(2), max_epochs=1)
    assert not (tmp_path / "p.csv").exists()

"""Progress lines of long phases: one line per epoch with the time elapsed and left (utils/progress.py), as the
demo's teacher pretraining prints them."""

import re

from monai_rd.utils import EpochProgress, format_seconds


def test_format_seconds_reads_at_a_glance():
    assert format_seconds(0.4) == "0 s" and format_seconds(42) == "42 s"
    assert format_seconds(185) == "3 min 05 s" and format_seconds(3720) == "1 h 02 min"


def test_epoch_progress_estimates_the_time_left_from_the_mean_epoch():
    clock = iter([100.0, 110.0, 120.0, 130.0])
    progress = EpochProgress("training", 3, clock=lambda: next(clock))
    assert progress.line(1, loss=0.5) == "training epoch 1/3: loss 0.500, 10 s elapsed, about 20 s left"
    assert progress.line(2) == "training epoch 2/3: 20 s elapsed, about 10 s left"
    assert progress.line(3) == "training epoch 3/3: 30 s elapsed, done"


def test_teacher_pretraining_prints_a_line_per_epoch(tmp_path):
    from monai_rd.experiments.source_teacher import ensure_source_teacher

    lines = []
    teacher = ensure_source_teacher(str(tmp_path), "resnet18", n=12, size=32, epochs=2, log=lines.append)
    assert teacher["pretrained_now"] and len(lines) == 2, lines
    assert re.fullmatch(r"teacher pretraining \(resnet18, 12 source images\) epoch 1/2: loss [0-9.]+, \d+ s elapsed, "
                        r"about \d+ s left", lines[0]), lines[0]  # fmt: skip
    assert lines[1].endswith(", done")
    again = []
    assert not ensure_source_teacher(str(tmp_path), "resnet18", 12, 32, 2, log=again.append)["pretrained_now"]
    assert again == []  # reused: nothing to wait for


def test_a_bundle_engine_logs_a_line_per_epoch_with_the_time_left(caplog):
    from ignite.engine import Engine

    from monai_rd.handlers import EpochProgressLog

    engine = Engine(lambda engine, batch: None)
    EpochProgressLog("training").attach(engine)
    with caplog.at_level("INFO", logger="monai_rd"):
        engine.run([0, 1], max_epochs=3)
    lines = [r.getMessage() for r in caplog.records if r.name == "monai_rd"]
    assert len(lines) == 3 and lines[0].startswith("training epoch 1/3: ") and "left" in lines[0], lines
    assert lines[2].startswith("training epoch 3/3: ") and lines[2].endswith("done")
    # a resumed run counts its epochs from where it resumed
    engine.state.max_epochs = 5
    caplog.clear()
    with caplog.at_level("INFO", logger="monai_rd"):
        engine.run([0, 1], max_epochs=5)
    assert [r.getMessage()[:20] for r in caplog.records if r.name == "monai_rd"] == [
        "training epoch 4/5: ",
        "training epoch 5/5: ",
    ]

"""The task families of issue 29: families split on a checkerboard, seeded task images, the summary against NumPy
by hand, the paper setting equal to the paper grid's RD row, and (slow) the command end to end, resumed."""

import csv
import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from monai_rd.data.synthetic import TARGET_CLASSES, make_target_images
from monai_rd.experiments import task_families as tf
from tests.helpers import REPO


def test_families_split_on_a_checkerboard_with_every_axis_value_in_both_halves():
    tune, held = tf.families("tune"), tf.families("held_out")
    assert len(tune) == len(held) == len(tf.families()) // 2 == 18
    assert not {f.name for f in tune} & {f.name for f in held}
    assert len({f.name for f in tf.families()}) == 36
    for axis in ("separability", "images_per_class", "teacher", "epochs"):
        assert {getattr(f, axis) for f in tune} == {getattr(f, axis) for f in held}
    assert len(tf.tasks("held_out", 2)) >= 30  # the 30 held-out tasks at the default
    with pytest.raises(ValueError, match="split"):
        tf.families("test")


def test_task_images_are_seeded_written_in_the_class_folder_layout_and_held_out_images_differ(tmp_path):
    task = tf.tasks("held_out", 1)[0]
    a = tf.write_task(task, str(tmp_path / "a"), 32, 5)
    b = tf.write_task(task, str(tmp_path / "b"), 32, 5)
    for split, n in ((0, tf.dataset_images_per_class(task.family.images_per_class)), (1, 5)):
        assert sorted(os.listdir(a[split])) == sorted(TARGET_CLASSES)
        for cls in TARGET_CLASSES:
            files = sorted(os.listdir(os.path.join(a[split], cls)))
            assert len(files) == n
            for name in files:
                assert open(os.path.join(a[split], cls, name), "rb").read() == open(
                    os.path.join(b[split], cls, name), "rb").read()  # fmt: skip
    # the PNGs hold the generator's images (rounded to 8 bits), in the generator's order and labels
    x, y = make_target_images(5, 32, task.seed + 1, contrast=tf.SEPARABILITY[task.family.separability])
    first = os.path.join(a[1], TARGET_CLASSES[int(y[0])], "0000.png")
    np.testing.assert_array_equal(np.asarray(Image.open(first)), np.round(x[0, 0].numpy() * 255).astype(np.uint8))
    train0 = np.asarray(
        Image.open(os.path.join(a[0], TARGET_CLASSES[0], sorted(os.listdir(os.path.join(a[0], TARGET_CLASSES[0])))[0]))
    )
    assert not any(np.array_equal(train0, np.asarray(Image.open(os.path.join(a[1], TARGET_CLASSES[0], f))))
                   for f in os.listdir(os.path.join(a[1], TARGET_CLASSES[0])))  # fmt: skip
    assert {t.seed for t in tf.tasks(None, 2)}.__len__() == 72  # every task its own images


@pytest.mark.parametrize("train_per_class", tf.IMAGES_PER_CLASS)
def test_the_bundles_split_leaves_the_familys_training_images_per_class(tmp_path, train_per_class):
    from monai.bundle import ConfigParser

    from monai_rd.bundle import bundle_root
    from monai_rd.data import index_class_folders

    n = tf.dataset_images_per_class(train_per_class)
    for cls in TARGET_CLASSES:
        os.makedirs(tmp_path / cls)
        for i in range(n):
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / cls / f"{i:04d}.png")
    config = ConfigParser.load_config_file(os.path.join(bundle_root("rd_clinical"), "configs", "train.json"))
    split = index_class_folders(tmp_path, val_fraction=config["val_fraction"], test_fraction=config["test_fraction"],
                                seed=0, verify=False)  # fmt: skip
    counts = {
        c: sum(os.path.basename(os.path.dirname(d["image"])) == c for d in split["training"]) for c in TARGET_CLASSES
    }
    assert set(counts.values()) == {train_per_class}, counts


def _records(acc: dict) -> dict:
    return {f"{t}/{m}/seed{s}": {"task": t, "family": t.rsplit("-t", 1)[0], "split": "held_out", "setting": m,
                                 "seed": s, "accuracy": a, "seconds": 1.0, "teacher_source_accuracy": 0.5}
            for (t, m, s), a in acc.items()}  # fmt: skip


def test_summary_equals_numpy_by_hand(tmp_path):
    rng = np.random.default_rng(0)
    acc = {}
    for t in ("clear-n8-weak-e15-t0", "mid-n20-weak-e30-t1"):
        for s in (0, 1, 2):
            for m in ("student", "kd", "rd", "rd_paper"):
                acc[(t, m, s)] = float(rng.integers(0, 121)) / 120
    del acc[("mid-n20-weak-e30-t1", "kd", 2)]  # an unpaired run is left out of the KD comparisons only
    rows = {(r["setting"], r["baseline"]): r for r in tf.summarise(_records(acc))}
    assert set(rows) == {(s, b) for s in ("rd", "rd_paper") for b in ("student", "kd")}
    for (setting, baseline), r in rows.items():
        d = np.array([100 * (acc[(t, setting, s)] - acc[(t, baseline, s)]) for (t, m, s) in acc
                      if m == setting and (t, baseline, s) in acc], dtype=np.float64)  # fmt: skip
        assert r["n"] == d.size == (5 if baseline == "kd" else 6)
        assert r["mean"] == pytest.approx(d.mean(), abs=1e-9)
        assert r["worst"] == pytest.approx(d.min(), abs=1e-9)
        assert r["share_losing_over_2"] == pytest.approx(np.mean(d < -2))
        assert (r["losses_over_5"], r["wins_over_5"]) == (int((d < -5).sum()), int((d > 5).sum()))
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
    paths = tf.write_report(_records(acc), str(tmp_path))
    with open(paths["csv"]) as f:
        assert len(f.read().strip().splitlines()) == 1 + len(acc)
    with open(paths["md"]) as f:
        text = f.read()
    assert "| rd | student | 6 |" in text and "clear-n8-weak-e15" in text
    clear = np.mean([100 * (acc[("clear-n8-weak-e15-t0", "rd", s)] - acc[("clear-n8-weak-e15-t0", "student", s)])
                     for s in (0, 1, 2)])  # fmt: skip
    assert f"| separability | clear | {clear:+.1f} (1) |" in text  # the axis table: per-task means over seeds
    seed1 = [
        100 * (acc[(t, "rd", 1)] - acc[(t, "student", 1)]) for t in ("clear-n8-weak-e15-t0", "mid-n20-weak-e30-t1")
    ]
    assert f"| rd | student | 1 | 2 | {np.mean(seed1):+.1f} [" in text  # the per-seed table
    assert os.path.getsize(paths["png"]) > 1000


def test_gate_summary_groups_gated_runs_by_what_their_gate_did(tmp_path):
    t = [f"clear-n8-weak-e15-t{i}" for i in range(4)]
    acc = {(t[0], "student", 0): 0.50, (t[0], "rd_gate", 0): 0.40, (t[1], "student", 0): 0.50,
           (t[1], "rd_gate", 0): 0.60, (t[2], "student", 0): 0.50, (t[2], "rd_gate", 0): 0.52,
           (t[3], "rd_gate", 0): 0.9}  # fmt: skip
    records = _records(acc)
    opened = {t[0]: [True, True], t[1]: [False, False, False], t[2]: [True, False, True, True], t[3]: [True]}
    for task, flags in opened.items():
        records[f"{task}/rd_gate/seed0"]["gate"] = [[e + 1, 0.5, 0.5, f] for e, f in enumerate(flags)]
    rows = {r["pattern"]: r for r in tf.gate_summary(records)}  # t3 has no student run: left out
    assert rows["always open"] == {"setting": "rd_gate", "pattern": "always open", "n": 1, "mean": pytest.approx(-10),
                                   "losses_over_5": 1, "wins_over_5": 0, "open_share": 1.0}  # fmt: skip
    assert (rows["never open"]["mean"], rows["never open"]["wins_over_5"]) == (pytest.approx(10), 1)
    assert rows["open and closed"]["open_share"] == 0.75 and rows["open and closed"]["mean"] == pytest.approx(2)
    paths = tf.write_report(records, str(tmp_path))
    with open(paths["md"]) as f:
        assert "| rd_gate | open and closed | 1 | +2.0 | 0 | 0 | 75 % |" in f.read()
    with open(paths["csv"]) as f:  # each gated run's gate in runs.csv; empty for runs without one
        rows = {(r["task"], r["setting"]): r for r in csv.DictReader(f)}
    assert (rows[(t[2], "rd_gate")]["gate_pattern"], rows[(t[2], "rd_gate")]["gate_open_share"]) == ("open and closed",
                                                                                                      "0.75")  # fmt: skip
    assert rows[(t[1], "rd_gate")]["gate_pattern"] == "never open" and rows[(t[0], "student")]["gate_pattern"] == ""
    with pytest.raises(ValueError, match="no validation"):
        tf.gate_pattern([])


def test_a_report_read_back_from_its_runs_csv_reports_the_same_and_the_workdir_takes_precedence(tmp_path, capsys):
    """A report whose workdir is gone (its ``runs.csv`` only) is reported again beside new runs: the same summary,
    gates included, and a run recorded in the workdir too is taken from the workdir."""
    from monai_rd.cli import main

    rng = np.random.default_rng(2)
    names = [t.name for t in tf.tasks("held_out", 1)[:4]]
    acc = {(t, m, s): float(rng.integers(0, 121)) / 120 for t in names for s in (0, 1) for m in ("student", "rd_gate")}
    records = _records(acc)
    for i, key in enumerate(k for k in records if "/rd_gate/" in k):
        records[key]["gate"] = [[e + 1, 0.5, 0.5, (i >> e) & 1 == 1] for e in range(3)]
    first = tf.write_report(records, str(tmp_path / "a"))
    back = tf.read_runs_csv(first["csv"])
    assert back.keys() == records.keys() and all("gate" not in r for r in back.values())
    assert {k: tf.run_gate(r) for k, r in back.items()} == {k: tf.run_gate(r) for k, r in records.items()}
    second = tf.write_report(back, str(tmp_path / "b"))
    for kind in ("csv", "md"):
        with open(first[kind]) as f, open(second[kind]) as g:
            assert f.read() == g.read()
    new = {k: dict(v) for k, v in list(records.items())[:1]}  # the workdir re-ran one run, with another accuracy
    ((key, rec),) = new.items()
    rec["accuracy"] = 0.123  # no accuracy of 120 test images
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "state.json").write_text(json.dumps(new))
    assert main(["task-families", "--workdir", str(tmp_path / "c"), "--report_only", "--runs_csv", first["csv"]]) == 0
    assert "| rd_gate | student | 8 |" in capsys.readouterr().out
    assert tf.read_runs_csv(str(tmp_path / "c" / "runs.csv"))[key]["accuracy"] == rec["accuracy"]
    with pytest.raises(SystemExit, match="no such file"):
        main(["task-families", "--workdir", str(tmp_path / "c"), "--report_only", "--runs_csv", "missing.csv"])
    (tmp_path / "bad.csv").write_text("task,setting\nx,rd\n")
    with pytest.raises(ValueError, match="not a task-families runs.csv"):
        tf.read_runs_csv(str(tmp_path / "bad.csv"))


def _spearman_by_hand(x, y):
    def ranks(v):  # average ranks of ties, 1-based
        v = np.asarray(v, dtype=np.float64)
        order = np.argsort(v, kind="stable")
        r = np.empty_like(v)
        r[order] = np.arange(1, v.size + 1)
        for value in np.unique(v):
            r[v == value] = r[v == value].mean()
        return r

    a, b = ranks(x) - ranks(x).mean(), ranks(y) - ranks(y).mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_score_correlations_equal_spearman_by_hand_over_per_task_mean_gains(tmp_path):
    rng = np.random.default_rng(1)
    names = [t.name for t in tf.tasks("held_out", 1)[:8]]
    acc = {(t, m, s): float(rng.integers(0, 121)) / 120 for t in names for s in (0, 1) for m in tf.SETTINGS}
    scores = {t: {"logme": float(rng.normal()), "probe_accuracy": float(rng.integers(0, 10)) / 10,
                  "knn_accuracy": float(rng.uniform())} for t in names[:7]}  # fmt: skip
    scores[names[1]]["probe_accuracy"] = scores[names[2]]["probe_accuracy"]  # a tie
    rows = tf.score_correlations(_records(acc), scores, n_resamples=200)
    rd_settings = [m for m in tf.SETTINGS if tf.SETTINGS[m]["method"] == "rd"]
    assert len(rd_settings) == 4 and len(rows) == len(rd_settings) * 2 * len(tf.SCORES)
    for r in rows:
        common = names[:7]  # the task without a score is left out
        gain = [
            np.mean([100 * (acc[(t, r["setting"], s)] - acc[(t, r["baseline"], s)]) for s in (0, 1)]) for t in common
        ]
        x = [scores[t][r["score"]] for t in common]
        assert r["n"] == 7
        assert r["rho"] == pytest.approx(_spearman_by_hand(x, gain), abs=1e-12)
        assert 0.0 <= r["p"] <= 1.0 and r["ci_low"] <= r["ci_high"]
    paths = tf.write_report(_records(acc), str(tmp_path), scores=scores)
    with open(paths["md"]) as f:
        assert "| rd | student | logme | 7 |" in f.read()
    assert os.path.getsize(paths["scores_png"]) > 1000
    assert tf.task_by_name(names[3]) == tf.tasks("held_out", 1)[3]
    with pytest.raises(ValueError, match="not a task name"):
        tf.task_by_name("clear-n8-weak-e15")


def test_the_paper_setting_is_the_paper_grids_rd_row():
    from monai_rd.experiments.protocol import load_grid

    grid = load_grid(os.path.join(REPO, "grids", "paper_table3.yaml"))
    paper = dict(tf.SETTINGS["rd_paper"])
    assert paper.pop("method") == grid.methods["rd"]["method"]
    expected = dict(grid.methods["rd"]["overrides"], reprogrammer_budget=grid.overrides["reprogrammer_budget"])
    assert paper == expected


@pytest.mark.slow
def test_task_families_command_runs_the_bundle_scores_held_out_images_and_resumes(tmp_path, capsys, caplog):
    """Through the bundle: the student alone and RD with its distillation gate (which the bundle's own validation
    drives; the default RD runs in every other bundle test)."""
    from monai_rd.cli import main

    family = tf.families("held_out")[0].name
    argv = ["task-families", "--workdir", str(tmp_path), "--families", family, "--tasks_per_family", "1",
            "--seeds", "0", "--settings", "student", "rd_gate", "--max_epochs", "1", "--source_images", "60",
            "--test_per_class", "4", "--batch_size", "4"]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="monai_rd.handlers.distillation_gate"):
        assert main(argv) == 0
    assert "distillation gate (epoch 1): teacher branch" in caplog.text  # the gate read the bundle's validation
    with open(tmp_path / "state.json") as f:
        state = json.load(f)
    assert sorted(r["setting"] for r in state.values()) == ["rd_gate", "student"]
    gated = next(r for r in state.values() if r["setting"] == "rd_gate")
    ((epoch, teacher_acc, student_acc, is_open),) = gated["gate"]  # one validation, recorded with the run
    assert epoch == 1 and is_open == (teacher_acc >= student_acc)
    assert "gate" not in next(r for r in state.values() if r["setting"] == "student")
    for r in state.values():
        assert r["family"] == family and 0.0 <= r["accuracy"] <= 1.0
        assert r["accuracy"] * 12 == pytest.approx(round(r["accuracy"] * 12))  # scored on the 12 held-out images
    assert not os.path.exists(tmp_path / "run" / "0")  # each run's outputs removed after scoring
    out = capsys.readouterr().out
    assert "| rd_gate | student | 1 |" in out and "summary.md" in out
    assert main(argv) == 0  # resumed: nothing left to run
    assert "2 recorded, 0 to run" in capsys.readouterr().out
    assert main(["task-families", "--workdir", str(tmp_path), "--report_only", "--score_teachers",
                 "--test_per_class", "4", "--source_images", "60"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| rd_gate | student | 1 |" in out
    with open(tmp_path / "scores" / f"{family}-t0" / "rank_teachers.csv") as f:
        row = next(csv.DictReader(f))  # rank-teachers' own table for the task's teacher on its training split
    assert row["teacher"] == f"torchvision:{tf.TEACHER_ARCH}" and row["random_weights"] == "False"
    assert int(row["num_items"]) == 3 * tf.families("held_out")[0].images_per_class
    assert float(row["logme"]) == pytest.approx(float(out.split(f"{family}-t0: logme ")[1].split(",")[0]), abs=1e-3)
    with pytest.raises(ValueError, match="not in the 'held_out' split"):
        main([*argv[:4], "clear-n8-weak-e15", *argv[5:]])

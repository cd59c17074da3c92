"""``monai-rd demo``: RD offline, with a teacher that really knows something.

1. Write a small synthetic dataset in a real dataset's on-disk layout (the target modality, e.g. grey speckled
   ultrasound-like BUSI images), plus held-out images of the same kind (another seed) that no run sees.
2. Pretrain a small teacher on a synthetic *source* modality that differs from the target (coloured shapes on
   colour gradients, :mod:`monai_rd.experiments.source_teacher`), once: it is saved under the demo folder and
   reused by later runs. It stands in for a foundation model pretrained elsewhere; it is synthetic, not one of
   the paper's teachers.
3. Run the dataset's real bundle twice through ``python -m monai.bundle run``: the student alone
   (``--method student``) and RD (``--method rd --teacher torchvision:<arch> --teacher_weights <file>``).
4. Score both deployed students on the held-out images, with the bundle's own validation preprocessing.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from monai_rd.data import synthetic

__all__ = ["DemoDataset", "DEMO_DATASETS", "DemoSettings", "bundle_command", "score_heldout", "run_demo"]


class DemoDataset(NamedTuple):
    """A bundle and its synthetic data writer ``writer(folder, n, size, seed) -> dataset_dir``."""

    bundle: str
    writer: Callable[[str, int, int, int], str]


#: ``--dataset`` name -> its bundle and synthetic writer (``n`` images per class, or patients for ChestX-ray14)
DEMO_DATASETS = {
    "busi": DemoDataset(
        "rd_busi", lambda f, n, size, seed: synthetic.make_busi_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "isic": DemoDataset(
        "rd_isic", lambda f, n, size, seed: synthetic.make_isic2018_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "covid": DemoDataset(
        "rd_covid", lambda f, n, size, seed: synthetic.make_covid_ct_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "btc": DemoDataset(
        "rd_btc",
        lambda f, n, size, seed: synthetic.make_btc_like(
            f, n_train_per_class=n, n_test_per_class=max(1, n // 4), size=size, seed=seed
        ),
    ),
    "chestxray": DemoDataset(
        "rd_chestxray", lambda f, n, size, seed: synthetic.make_chestxray14_like(f, n_patients=n, size=size, seed=seed)
    ),
}


class DemoSettings(NamedTuple):
    """Everything a demo run depends on (the CLI's options)."""

    dataset: str = "busi"
    workdir: str = "rd_demo"
    images_per_class: int = 40
    heldout_per_class: int = 30
    image_size: int = 48
    max_epochs: int = 15
    batch_size: int = 8
    learning_rate: float = 1e-3
    student: str = "resnet18"
    seed: int = 0
    teacher_arch: str = "resnet18"
    source_images: int = 1200
    source_epochs: int = 8


def bundle_command(s: DemoSettings, dataset_dir: str, output_dir: str, method: str, teacher_weights: str) -> list[str]:
    """The ``python -m monai.bundle run`` argv the demo executes (printed for the user too): the bundle's train.json
    with the demo's settings (:func:`monai_rd.bundle.bundle_args`)."""
    from monai_rd.bundle import bundle_args

    return bundle_args(
        DEMO_DATASETS[s.dataset].bundle, "train.json", dataset_dir=dataset_dir, output_dir=output_dir,
        image_size=s.image_size, max_epochs=s.max_epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
        num_workers=0, progress_bar=False, method=method, teacher=f"torchvision:{s.teacher_arch}",
        teacher_weights=teacher_weights, student=s.student, seed=s.seed,
    )  # fmt: skip


def _items(datalist: dict) -> list[dict]:
    """Every labelled item of every split of ``datalist`` (once each)."""
    seen, items = set(), []
    for value in datalist.values():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and "image" in item and "label" in item and str(item["image"]) not in seen:
                    seen.add(str(item["image"]))
                    items.append(item)
    return items


def score_heldout(bundle: str, dataset_dir: str, checkpoint: str, student: str, image_size: int,
                  datalist_file: str) -> dict[str, Any]:  # fmt: skip
    """Score a deployed student (``checkpoint``, a state dict of ``StudentClassifier``) on every image of
    ``dataset_dir``, indexed and preprocessed exactly as the bundle's ``train.json`` validates.

    Returns:
        ``{"n", "accuracy"}`` (single-label: argmax accuracy) or ``{"n", "auc_macro"}`` (multi-label).
    """
    import torch
    from monai.bundle import ConfigParser

    from monai_rd.bundle import bundle_root
    from monai_rd.metrics.classification import auc, roc_curve
    from monai_rd.networks import StudentClassifier

    parser = ConfigParser()
    parser.read_config(os.path.join(bundle_root(bundle), "configs", "train.json"))
    parser["dataset_dir"], parser["image_size"], parser["datalist_file"] = dataset_dir, image_size, datalist_file
    parser["output_dir"] = os.path.dirname(datalist_file)
    items = _items(parser.get_parsed_content("datalist"))
    transform = parser.get_parsed_content("validate::preprocessing")
    num_classes = parser.get_parsed_content("num_classes")
    model = StudentClassifier(student, num_classes)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    model.eval()
    logits = []
    with torch.no_grad():
        for i in range(0, len(items), 32):
            batch = [transform(dict(item)) for item in items[i : i + 32]]
            logits.append(model(torch.stack([torch.as_tensor(b["image"]).float() for b in batch])))
    scores = torch.cat(logits).numpy()
    labels = np.asarray([np.asarray(item["label"]) for item in items])
    if labels.ndim == 2:  # multi-label: macro AUC over the labels present with both outcomes
        aucs = [auc(*roc_curve(labels[:, c] > 0.5, scores[:, c])[:2]) for c in range(labels.shape[1])
                if 0 < labels[:, c].sum() < len(labels)]  # fmt: skip
        return {"n": len(items), "auc_macro": float(np.mean(aucs)) if aucs else float("nan")}
    return {"n": len(items), "accuracy": float((scores.argmax(1) == labels.astype(int)).mean())}


def run_demo(s: DemoSettings, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole demo (see the module docstring); returns and writes ``<workdir>/demo_results[_<dataset>].json``.

    Raises:
        RuntimeError: a bundle run failed (its command is named; its output was printed above).
    """
    from monai_rd.experiments.source_teacher import ensure_source_teacher
    from monai_rd.utils import atomic_write_json

    log = log or (lambda line: print(line, flush=True))
    start = time.time()
    workdir = os.path.abspath(s.workdir)
    demo = DEMO_DATASETS[s.dataset]
    suffix = "" if s.dataset == "busi" else f"_{s.dataset}"  # BUSI keeps the original data/ and outputs/
    data = demo.writer(os.path.join(workdir, f"data{suffix}"), s.images_per_class, s.image_size, s.seed)
    heldout = demo.writer(os.path.join(workdir, f"heldout{suffix}"), s.heldout_per_class, s.image_size, s.seed + 1000)
    log(f"Synthetic {s.dataset}-layout data written to {data}; held-out images (never trained on) in {heldout}")

    teacher_dir = os.path.join(workdir, "teacher")
    log(
        f"Source teacher torchvision:{s.teacher_arch}: pretraining on {s.source_images} synthetic source images for "
        f"{s.source_epochs} epochs unless {teacher_dir} holds it from an earlier run"
    )
    teacher = ensure_source_teacher(teacher_dir, s.teacher_arch, s.source_images, s.image_size, s.source_epochs,
                                    seed=s.seed, log=log)  # fmt: skip
    how = f"pretrained now ({teacher['seconds']:.0f} s)" if teacher["pretrained_now"] else "reused from an earlier run"
    log(
        f"Source teacher torchvision:{s.teacher_arch} {how}: {teacher['weights']} (synthetic coloured shapes, "
        f"source-domain accuracy {100 * teacher['source_accuracy']:.1f}%; NOT a medical foundation model)"
    )

    results: dict[str, Any] = {"settings": s._asdict(), "teacher": teacher, "runs": {}}
    for method, name in (("student", "student_only"), ("rd", "rd")):
        output_dir = os.path.join(workdir, f"outputs{suffix}" if method == "rd" else f"outputs{suffix}_student_only")
        cmd = bundle_command(s, data, output_dir, method, teacher["weights"])
        log(f"Running ({name}): {' '.join(cmd)}")
        run_start = time.time()
        code = subprocess.call(cmd)
        if code != 0:
            raise RuntimeError(f"The {name} bundle run failed (exit code {code}): {' '.join(cmd)}")
        score = score_heldout(demo.bundle, heldout, os.path.join(output_dir, "model.pt"), s.student, s.image_size,
                              os.path.join(output_dir, "heldout_datalist.json"))  # fmt: skip
        results["runs"][name] = {**score, "output_dir": output_dir, "seconds": round(time.time() - run_start, 1)}
    results["seconds"] = round(time.time() - start, 1)
    atomic_write_json(os.path.join(workdir, f"demo_results{suffix}.json"), results)

    metric = "accuracy" if "accuracy" in results["runs"]["rd"] else "auc_macro"
    n = results["runs"]["rd"]["n"]
    log(f"\nHeld-out {metric} ({n} images, never seen in training or model selection):")
    for name in ("student_only", "rd"):
        r = results["runs"][name]
        log(f"  {name:<13} {100 * r[metric]:5.1f}%   ({r['seconds']:.0f} s)")
    out = results["runs"]["rd"]["output_dir"]
    log(f"\nDone in {results['seconds']:.0f} s. The RD run:")
    from monai.utils import path_to_sqlite_uri

    from monai_rd.bundle import bundle_root, read_training_config, training_done_lines

    trained = read_training_config(out)  # the bundle's own MLflow store: <output_dir>/mlruns.db
    for line in training_done_lines(bundle_root(demo.bundle), out, os.path.join(out, "model.pt"),
                                    path_to_sqlite_uri(os.path.join(out, "mlruns.db")), trained["experiment_name"], None,
                                    trained.get("registered_model_name"), input_dir=heldout):  # fmt: skip
        log(line)
    return results

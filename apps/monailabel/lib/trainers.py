"""Training task: RD (frozen teacher -> reprogrammer -> shared head, student) through the bundle's train.json."""

from __future__ import annotations

import json
import logging
import os
import shutil

from monai_rd.data import datalist_hash, stratified_split, write_datalist
from monai_rd.deploy import SERVING_DIR, classification_datalist, export_run_serving
from monailabel.interfaces.datastore import Datastore
from monailabel.tasks.train.bundle import BundleTrainTask

logger = logging.getLogger(__name__)

# request/conf keys passed to train.json as top-level ids (conf keys carry an ``rd_`` prefix)
RD_OPTIONS = ("image_size", "batch_size", "num_workers", "teacher", "student", "learning_rate", "seed")


class RDTrainTask(BundleTrainTask):
    """Run the bundle's ``train.json`` on the labelled images of the MONAI Label datastore.

    Each image's label file names its class (see :func:`monai_rd.deploy.label.read_class_label`). The split is
    stratified (``val_split``, default 0.2); the datalist is written to ``<output_dir>/datalist.json`` and
    replaces the bundle's dataset indexer. With ``pretrained`` the student is warm-started from
    ``models/model.pt``. When the run ends, its best student (``<output_dir>/model.pt``) becomes the bundle's
    ``models/model.pt`` and its serving folder is re-exported, so the infer task serves it at its next request.
    """

    def __init__(self, path: str, conf: dict, **kwargs):
        super().__init__(path, conf, load_strict=True, **kwargs)
        with open(os.path.join(path, "configs", "metadata.json"), encoding="utf-8") as f:
            channel_def = json.load(f)["network_data_format"]["outputs"]["pred"]["channel_def"]
        self.class_names = [channel_def[k] for k in sorted(channel_def, key=int)]
        self._request: dict = {}

    def config(self):
        options = super().config()
        options.update({"val_split": 0.2, "multi_gpu": False})
        options.update({k: self.conf[f"rd_{k}"] for k in RD_OPTIONS if f"rd_{k}" in self.conf})
        return options

    def _fetch_datalist(self, request, datastore: Datastore):
        items = [{"image": d["image"], "label": d.get("label")} for d in datastore.datalist() if d]
        data = classification_datalist(items, self.class_names)
        if not data:
            raise ValueError("No labelled image in the datastore: save a label file naming a class for some images.")
        return data

    def _partition_datalist(self, datalist, request, shuffle=False):
        val_split = float(request.get("val_split", 0.2))
        train_idx, val_idx = stratified_split(
            [d["label"] for d in datalist], val_fraction=val_split, seed=int(request.get("seed", 0))
        )
        return [datalist[i] for i in train_idx], [datalist[i] for i in val_idx]

    def _load_checkpoint(self, model_pytorch, pretrained, train_handlers):
        # models/model.pt is the student (not the RD network): warm-start only the student
        if pretrained and os.path.exists(model_pytorch):
            logger.info(f"Warm-starting the student from {model_pytorch}")
            train_handlers.insert(
                0,
                {
                    "_target_": "CheckpointLoader",
                    "load_path": model_pytorch,
                    "load_dict": {"model": "$@network.deployable()"},
                    "strict": True,
                },
            )

    def _update_overrides(self, overrides):
        request = self._request
        output_dir = request.get("output_dir") or os.path.join(self.bundle_path, "outputs")
        train, val = overrides.pop("train#dataset#data"), overrides.pop("validate#dataset#data", [])
        # MONAI Label splits its datastore in two: the validation part is also what the run's test report scores,
        # so the run is labelled with the protocol that says so (selection = reporting set)
        datalist = {
            "training": train,
            "validation": val,
            "test": val,
            "split_protocol": "paper_4to1",
            "test_split": "held-out",
        }
        datalist["split_hash"] = datalist_hash(datalist)
        datalist_file = write_datalist(datalist, os.path.join(output_dir, "datalist.json"))
        overrides.update({
            "output_dir": output_dir,
            "datalist_file": datalist_file,
            "datalist": datalist,
            "split_protocol": "paper_4to1",
            "max_epochs": overrides["train#trainer#max_epochs"],
            "progress_bar": False,
        })  # fmt: skip
        for key in RD_OPTIONS:
            if key in request:
                overrides[key] = request[key]
            elif f"rd_{key}" in self.conf:
                overrides[key] = self.conf[f"rd_{key}"]
        for key in ("image_size", "batch_size", "num_workers", "seed"):
            if key in overrides:
                overrides[key] = int(overrides[key])
        return overrides

    def __call__(self, request, datastore: Datastore):
        self._request = dict(request)
        result = super().__call__(request, datastore)
        output_dir = self._request.get("output_dir") or os.path.join(self.bundle_path, "outputs")
        best = os.path.join(output_dir, "model.pt")
        if not os.path.isfile(best):
            raise RuntimeError(f"RD training finished without a best student at {best!r}.")
        target = os.path.join(self.bundle_path, "models", "model.pt")
        tmp = target + ".tmp"
        shutil.copyfile(best, tmp)
        os.replace(tmp, target)
        export_run_serving(output_dir, os.path.join(self.bundle_path, SERVING_DIR), target)
        logger.info(f"Best student {best} is now served from {target} (serving folder re-exported)")
        return result

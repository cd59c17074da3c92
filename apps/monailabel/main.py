"""MONAI Label app serving a student distilled by Reprogramming Distillation (classification).

Install (one command, a venv of its own; see docs/export.md) and start::

    monailabel start_server --app apps/monailabel --studies <images or DICOM folder> --conf bundle <bundle folder>

``<bundle folder>`` is written by ``monai-rd label-bundle --output_dir <run> --dest <bundle folder>`` in the
training environment; the app serves its ``serving/`` folder (ONNX student + the run's preprocessing), so
it needs no ``monai_rd``. With ``monai_rd`` importable as well, the bundle's ``train.json`` is offered as an RD
trainer (``lib/trainers.py``). The model is served under the bundle folder's name. DICOM files (``*.dcm``) are
listed in a local studies folder next to the usual image types.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import lib
import monailabel
from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

logger = logging.getLogger(__name__)

IMAGE_PATTERNS = ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.tif", "*.tiff", "*.dcm")


class RDApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        bundle = conf.get("bundle") or os.path.join(app_dir, "model", "rd_busi")
        self.bundle_path = os.path.abspath(bundle)
        self.serving_dir = os.path.join(self.bundle_path, "serving")
        if not os.path.isfile(os.path.join(self.serving_dir, "serving.json")):
            raise FileNotFoundError(
                f"No serving/serving.json in {self.bundle_path!r}. Package a trained run first: "
                f"monai-rd label-bundle --output_dir <run output_dir> --dest {self.bundle_path}"
            )
        self.model_name = os.path.basename(os.path.normpath(self.bundle_path))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"MONAILabel - Reprogramming Distillation ({monailabel.__version__})",
            description="Lightweight students distilled from frozen medical foundation models",
            version=monailabel.__version__,
        )

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        extensions = list(settings.MONAI_LABEL_DATASTORE_FILE_EXT)
        extensions += [p for p in IMAGE_PATTERNS if p not in extensions]
        return LocalDatastore(
            self.studies, extensions=extensions, auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD
        )

    def init_infers(self) -> dict[str, InferTask]:
        return {self.model_name: lib.RDServingInfer(self.serving_dir)}

    def init_trainers(self) -> dict[str, TrainTask]:
        if importlib.util.find_spec("monai_rd") is None:
            logger.info(
                "monai_rd is not installed here: serving only, no RD trainer (training runs in the core "
                "environment: python -m monai.bundle run --config_file bundles/<b>/configs/train.json)."
            )
            return {}
        if not os.path.isfile(os.path.join(self.bundle_path, "models", "model.pt")):
            return {}
        from lib.trainers import RDTrainTask

        task = RDTrainTask(self.bundle_path, self.conf)
        return {self.model_name: task} if task.is_valid() else {}

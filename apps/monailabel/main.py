"""MONAI Label app serving a Reprogramming Distillation bundle (classification) and training it with RD.

Start with::

    monailabel start_server --app apps/monailabel --studies <image folder> --conf bundle <bundle folder>

``<bundle folder>`` is a bundle prepared by ``monai-rd label-bundle`` (``configs/`` + ``models/model.pt``);
by default ``apps/monailabel/model/rd_busi``. The model is served under the bundle folder's name.
Optional conf: ``rd_image_size``, ``rd_batch_size``, ``rd_num_workers``, ``rd_teacher``, ``rd_student`` ...
(training options, see ``lib/trainers.py``).
"""

from __future__ import annotations

import logging
import os

import lib
import monailabel
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

logger = logging.getLogger(__name__)


class RDApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        bundle = conf.get("bundle") or os.path.join(app_dir, "model", "rd_busi")
        self.bundle_path = os.path.abspath(bundle)
        if not os.path.isfile(os.path.join(self.bundle_path, "models", "model.pt")):
            raise FileNotFoundError(
                f"No models/model.pt in {self.bundle_path!r}. Package a trained run first: "
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

    def init_infers(self) -> dict[str, InferTask]:
        task = lib.RDClassificationInfer(self.bundle_path, self.conf)
        if not task.is_valid():
            raise RuntimeError(f"MONAI Label could not load the bundle {self.bundle_path!r}; see the log above.")
        return {self.model_name: task}

    def init_trainers(self) -> dict[str, TrainTask]:
        task = lib.RDTrainTask(self.bundle_path, self.conf)
        return {self.model_name: task} if task.is_valid() else {}

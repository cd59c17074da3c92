"""Inference task: the RD bundle's deployable student as a MONAI Label classification model."""

from __future__ import annotations

import logging

from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleInferTask

logger = logging.getLogger(__name__)


class RDClassificationInfer(BundleInferTask):
    """Serve ``<bundle>/models/model.pt`` through the bundle's ``configs/inference.json``.

    The bundle's ``network_def`` (a ``StudentClassifier``), ``preprocessing`` (image loading, RGB, [0, 1],
    resize), ``inferer`` and ``postprocessing`` (softmax) are used as they are; labels come from
    ``metadata.json`` ``network_data_format.outputs.pred.channel_def``. The result JSON holds
    ``prediction: [{"idx", "label", "score"}]`` with one softmax probability per class. A classification has
    no image to restore into, hence ``add_post_restore=False``; loading is strict, so a checkpoint that does
    not fit the bundle's student fails instead of serving random weights.
    """

    def __init__(self, path: str, conf: dict, **kwargs):
        super().__init__(path, conf, type=InferType.CLASSIFICATION, add_post_restore=False, load_strict=True, **kwargs)

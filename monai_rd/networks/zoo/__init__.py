"""The foundation-model teacher zoo: importing it registers every builder in :data:`TEACHERS`.

Names: ``pmc_clip_rn50``, ``radimagenet_resnet50``, ``radimagenet_densenet121``, ``lvmmed_resnet50``,
``lvmmed_vit_b``, ``biomedclip_vit_b``, ``timm:<arch>``, ``monai:<Net>``, ``torchscript``, ``onnx`` (and
``torchvision:<arch>``, ``resnet50``, ``densenet121`` from :mod:`monai_rd.networks.nets.teachers`).
Volumes: ``swin_unetr_ssl``, ``medicalnet_resnet{10,18,50}``, ``models_genesis`` and ``slicewise:<2D teacher>``.
"""

from monai_rd.networks.zoo import biomedclip, generic, lvm_med, pmc_clip, radimagenet
from monai_rd.networks.zoo import volumes  # 3D encoders (the slice-wise family registers with the nets)
from monai_rd.networks.zoo.keras import KerasResNet50, read_keras_h5
from monai_rd.networks.zoo.pmc_clip import ModifiedResNet

__all__ = [
    "KerasResNet50",
    "ModifiedResNet",
    "read_keras_h5",
    "biomedclip",
    "generic",
    "lvm_med",
    "pmc_clip",
    "radimagenet",
    "volumes",
]

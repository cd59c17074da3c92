"""Networks: frozen teachers, student backbones, the reprogrammer ``g`` and RDNet."""

from monai_rd.networks.blocks import Reprogrammer, ResidualConvBlock, ResidualMLPBlock, bottleneck_width
from monai_rd.networks.checkpoint import WeightsMismatchError, load_weights, read_state_dict
from monai_rd.networks.distributed import distributed_rdnet
from monai_rd.networks.nets import (
    STUDENTS,
    TEACHERS,
    FeatureBackbone,
    FrozenTeacher,
    RDNet,
    StudentClassifier,
    build_student,
    build_teacher,
    probe_output_shape,
    remove_classifier,
)
from monai_rd.networks import zoo  # registers the foundation-model teachers
from monai_rd.networks.performance import autocast_dtype, prepare_network
from monai_rd.networks.blocks.adapters import LORA_TARGET_SUFFIXES, VisualPrompts, find_vit, lora_teacher, vpt_teacher
from monai_rd.networks.nets.method_nets import (
    DistillNet,
    FrozenBranch,
    LayerTaps,
    ReferenceNet,
    StudentNet,
    TeacherClassifier,
    TunedTeacher,
    default_feature_layer,
    pool_features,
)

"""Networks: frozen teachers, student backbones, the reprogrammer ``g`` and RDNet."""

from monai_rd.networks.blocks import Reprogrammer, ResidualConvBlock, ResidualMLPBlock, bottleneck_width
from monai_rd.networks.checkpoint import WeightsMismatchError, load_weights, read_state_dict
from monai_rd.networks.weights import (
    RANDOM_WEIGHTS_WARNING,
    MissingWeightsError,
    RandomTeacherWarning,
    WeightsRecord,
    WeightsSourceError,
    check_teacher_weights,
    resolve_weights,
)
from monai_rd.networks.distributed import TrainableParts, ddp_ignored_names, distributed_network, distributed_rdnet
from monai_rd.networks.nets import (
    STUDENTS,
    TEACHERS,
    FeatureBackbone,
    FrozenTeacher,
    RDNet,
    RDTeacherBranch,
    StudentClassifier,
    build_student,
    build_teacher,
    check_teacher_dims,
    probe_output_shape,
    remove_classifier,
)
from monai_rd.networks import zoo  # registers the foundation-model teachers
from monai_rd.networks.performance import amp_effect, autocast_dtype, prepare_network
from monai_rd.networks.blocks.adapters import (
    LORA_TARGET_SUFFIXES,
    PromptedSAMAttention,
    VisualPrompts,
    default_lora_targets,
    find_vit,
    lora_teacher,
    used_layers,
    vpt_teacher,
)
from monai_rd.networks.layer_taps import LayerTaps, default_feature_layer, default_feature_layers, tap_layout, to_nchw
from monai_rd.networks.nets.method_nets import DistillNet, FrozenBranch, ReferenceNet, StudentNet, TunedTeacher
from monai_rd.networks.nets.teacher_classifiers import TeacherClassifier, VolumeTeacherClassifier, pool_features

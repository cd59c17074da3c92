"""Networks: frozen teachers, student backbones, the reprogrammer ``g`` and RDNet."""

from .backbones import FeatureBackbone, probe_output_shape, remove_classifier
from .checkpoint import WeightsMismatchError, load_weights, read_state_dict
from .rdnet import RDNet
from .registry import Registry
from .reprogrammer import Reprogrammer, ResidualConvBlock, ResidualMLPBlock
from .students import STUDENTS, StudentClassifier, build_student
from .teachers import TEACHERS, FrozenTeacher, build_teacher
from .distributed import distributed_rdnet
from . import zoo  # registers the foundation-model teachers
from .performance import autocast_dtype, prepare_network

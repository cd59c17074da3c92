"""Networks: RDNet, the student classifiers, the frozen teachers and the comparison methods' networks."""

from monai_rd.networks.nets.backbones import FeatureBackbone, probe_output_shape, remove_classifier
from monai_rd.networks.nets.rdnet import RDNet, RDTeacherBranch
from monai_rd.networks.nets.students import STUDENTS, StudentClassifier, build_student
from monai_rd.networks.nets.teachers import TEACHERS, FrozenTeacher, build_teacher
from monai_rd.networks.nets.volume_teachers import FrozenVolumeTeacher, SliceWiseTeacher, check_teacher_dims

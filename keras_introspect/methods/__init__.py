"""Training methods: each a `keras.Model` wrapping a classifier backbone.

Each module holds one method's model class and registers it in `registry.METHODS` (in the order
imported here: the command line lists them so).
"""

from keras_introspect.methods.base import ClassifierTrainer, EpochCounter
from keras_introspect.methods.introspective import IntrospectiveModel
from keras_introspect.methods.standard import StandardModel
from keras_introspect.methods.teacher_kd import TeacherDistillationModel
from keras_introspect.methods.teacher_free import TeacherFreeModel
from keras_introspect.methods.mutual import MutualLearningModel
from keras_introspect.methods.frskd import FRSKDModel
from keras_introspect.methods.progressive_self_kd import ProgressiveSelfKDModel
from keras_introspect.methods.online_label_smoothing import OnlineLabelSmoothingModel
from keras_introspect.methods.curriculum import InstanceSequenceCurriculum

__all__ = [
    "ClassifierTrainer",
    "EpochCounter",
    "FRSKDModel",
    "InstanceSequenceCurriculum",
    "IntrospectiveModel",
    "MutualLearningModel",
    "OnlineLabelSmoothingModel",
    "ProgressiveSelfKDModel",
    "StandardModel",
    "TeacherDistillationModel",
    "TeacherFreeModel",
]

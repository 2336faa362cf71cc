"""Teacher-free knowledge distillation (Yuan et al., CVPR 2020), virtual-teacher form.

    L = (1 - a) · CE(y, p) + a · m · KL(softmax(p_d / T) ‖ softmax(z))

with the hand-designed "virtual teacher" p_d(k) = c for the true class and
(1 - c) / (K - 1) otherwise, softened at a high temperature T (the paper's
Tf-KD_reg; as in the authors' code the student is not softened). The
self-training form (Tf-KD_self: a pre-trained copy of the student is the
teacher) is `TeacherDistillationModel` with that copy as teacher
(`--method tfkd_self --teacher student.keras`).

Defaults follow the authors' CIFAR settings (c = 0.99, T = 20); their
KLDivLoss averaged over classes as well, so their multiplier 100 at K = 10
corresponds to m = 10 here.
"""

import keras
import tensorflow as tf

from keras_introspect import losses as loss_lib
from keras_introspect import options
from keras_introspect.methods import registry
from keras_introspect.methods.base import ClassifierTrainer


@keras.saving.register_keras_serializable(package="keras_introspect")
class TeacherFreeModel(ClassifierTrainer):
    """Distil a virtual teacher: a smoothed, temperature-softened label.

    Args:
        backbone: the classifier.
        correct_prob: c, the virtual teacher's probability of the true class.
        temperature: T applied to the virtual teacher's distribution.
        alpha: a, the weight of the distillation term.
        multiplier: m, its extra scale.

    Example:
    >>> model = ki.TeacherFreeModel(ki.architectures.resnet20())
    """

    TRAIN_TERMS = ("cross_entropy", "distillation")
    OPTIONS = {
        "correct_prob": options.Option(0.99, float, "the virtual teacher's true-class probability",
                                       range="open-unit"),
        "temperature": options.distillation_temperature(20.0),
        "alpha": options.distillation_weight(0.1),
        "multiplier": options.Option(10.0, float, "extra scale of the distillation term", range="non-negative"),
    }

    def __init__(self, backbone, correct_prob=0.99, temperature=20.0, alpha=0.1, multiplier=10.0, **kwargs):
        super().__init__(backbone, **kwargs)
        checked = self._check_options(correct_prob=correct_prob, temperature=temperature, alpha=alpha,
                                      multiplier=multiplier)
        self.correct_prob = checked["correct_prob"]
        self.temperature = checked["temperature"]
        self.alpha = checked["alpha"]
        self.multiplier = checked["multiplier"]

    def virtual_teacher(self, labels):
        """softmax(p_d / T) for each label: `(batch, classes)`."""
        k = self.num_classes
        p_d = tf.one_hot(labels, k, on_value=self.correct_prob, off_value=(1.0 - self.correct_prob) / (k - 1))
        return tf.nn.softmax(p_d / self.temperature)

    def compute_terms(self, x, targets, labels, tape):
        del tape
        logits = self.logits(x, training=True)
        ce = loss_lib.cross_entropy(targets, logits)
        distill = loss_lib.distillation_kl(self.virtual_teacher(labels), logits, 1.0)
        loss = (1.0 - self.alpha) * ce + self.alpha * self.multiplier * distill
        return logits, loss, {"cross_entropy": ce, "distillation": distill}

    def get_config(self):
        return {
            **super().get_config(),
            "correct_prob": self.correct_prob,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "multiplier": self.multiplier,
        }


registry.register("tfkd", TeacherFreeModel, "teacher-free KD: a hand-made virtual teacher")

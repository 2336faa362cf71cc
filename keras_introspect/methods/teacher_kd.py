"""Knowledge distillation from a teacher (Hinton et al., 2015), and the
paper's dissection of what a teacher transfers.

    L = (1 - a) · CE(y, softmax(z)) + a · T² · KL(q_T ‖ softmax(z / T)),
    q_T = softmax(z_teacher / T)

`teacher_targets` selects what the student sees:

* `"teacher"`: q_T itself.
* `"shuffled"`: the non-true-class probabilities of q_T permuted at random
  among the non-true classes — keeps the mass on non-true classes, breaks the
  class-similarity structure.
* `"uniform"`: the non-true mass spread evenly — keeps the mass only.

The distillation term is Keras's `keras.distillation.LogitsDistillation`
with `loss=keras.losses.KLDivergence()` (KL at temperature T, times T²;
tested equal), computed per example instead: the `Distiller` averages with a
plain mean, which ignores sample weights and makes gradients N× too large on
N replicas. (With its default `loss="kl_divergence"`, a string, Keras 3.15's
`LogitsDistillation` applies the KL to the tempered logits rather than to
probabilities and drops T²; see tests/test_comparators.py.)
"""

import os
import zipfile

import keras
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect import losses as loss_lib
from keras_introspect import options
from keras_introspect.methods import registry
from keras_introspect.methods.base import ClassifierTrainer
from keras_introspect.errors import InputError

TEACHER_TARGETS = ("teacher", "shuffled", "uniform")


def load_model_file(path, what="model"):
    """`keras.saving.load_model` with errors that say what is wrong with the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"The {what} file {path!r} does not exist.")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise InputError(f"The {what} file {path!r} is not a complete .keras archive (truncated or damaged); "
                         "save the model again.")
    try:
        return keras.saving.load_model(path)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"Cannot load the {what} from {path!r}: {error}") from None


def load_teacher(teacher):
    """A teacher backbone from a model, a library wrapper or a `.keras` path."""
    if isinstance(teacher, (str, os.PathLike)):
        teacher = load_model_file(teacher, "teacher")
    return getattr(teacher, "backbone", teacher)


def shuffle_non_true(q, labels, seed=None):
    """Permute each row's non-true-class probabilities at random; keep q_y."""
    num_classes = tf.shape(q)[-1]
    is_true = tf.one_hot(labels, num_classes) > 0.5
    keys = tf.random.uniform(tf.shape(q), seed=seed)
    # Source order: non-true classes in random order, the true class last.
    source = tf.argsort(tf.where(is_true, 2.0, keys), axis=-1)
    # Destination order: non-true classes in index order, the true class last.
    index = tf.cast(tf.broadcast_to(tf.range(num_classes), tf.shape(q)), tf.float32)
    destination = tf.argsort(tf.where(is_true, tf.cast(num_classes, tf.float32), index), axis=-1)
    values = tf.gather(q, source, batch_dims=1)
    rows = tf.broadcast_to(tf.range(tf.shape(q)[0])[:, None], tf.shape(q))
    indices = tf.stack([rows, destination], axis=-1)
    return tf.scatter_nd(indices, values, tf.shape(q))


def uniform_non_true(q, labels):
    """Spread each row's non-true mass evenly over the non-true classes."""
    num_classes = tf.shape(q)[-1]
    is_true = tf.one_hot(labels, num_classes) > 0.5
    true_mass = tf.gather(q, labels, batch_dims=1)[:, None]
    others = (1.0 - true_mass) / tf.cast(num_classes - 1, q.dtype)
    return tf.where(is_true, true_mass, others)


@keras.saving.register_keras_serializable(package="keras_introspect")
class TeacherDistillationModel(ClassifierTrainer):
    """A student trained on labels and a frozen teacher's softened outputs.

    Args:
        backbone: the student classifier.
        teacher: the teacher: a classifier, a library model wrapping one, or
            the path of a `.keras` file.
        alpha: weight a of the distillation term.
        temperature: T.
        teacher_targets: `"teacher"`, `"shuffled"` or `"uniform"` (see above).
        seed: seed of the shuffling.

    Example:
    >>> teacher = keras.saving.load_model("teacher.keras")
    >>> model = ki.TeacherDistillationModel(ki.architectures.resnet20(), teacher)
    """

    TRAIN_TERMS = ("cross_entropy", "distillation", "target_true_mass")
    NESTED_OBJECTS = ("backbone", "teacher")
    OPTIONS = {
        "alpha": options.distillation_weight(0.9),
        "temperature": options.distillation_temperature(4.0),
        "teacher_targets": options.Option("teacher", str, "what the student sees: the teacher's soft labels, or "
                                          "their non-true part shuffled or made uniform", choices=TEACHER_TARGETS),
    }

    def __init__(self, backbone, teacher, alpha=0.9, temperature=4.0, teacher_targets="teacher", seed=None, **kwargs):
        super().__init__(backbone, **kwargs)
        teacher = load_teacher(teacher)
        classes = backbones.check_classifier(teacher)
        if classes != self.num_classes:
            raise InputError(f"The teacher has {classes} classes, the student {self.num_classes}.")
        checked = self._check_options(alpha=alpha, temperature=temperature, teacher_targets=teacher_targets)
        teacher.trainable = False
        self.teacher = teacher
        self._teacher_view = backbones.Untracked(backbones.tap_model(teacher))
        self.alpha = checked["alpha"]
        self.temperature = checked["temperature"]
        self.teacher_targets = checked["teacher_targets"]
        self.seed = seed

    def teacher_soft_targets(self, x, labels):
        """q_T (or its shuffled/uniform variant) for a batch, gradient stopped."""
        logits = backbones.call_taps(self._teacher_view.value, x, training=False)[-1]
        q = tf.nn.softmax(tf.cast(logits, tf.float32) / self.temperature)
        if self.teacher_targets == "shuffled":
            q = shuffle_non_true(q, labels, self.seed)
        elif self.teacher_targets == "uniform":
            q = uniform_non_true(q, labels)
        return tf.stop_gradient(q)

    def compute_terms(self, x, targets, labels, tape):
        del tape
        logits = self.logits(x, training=True)
        q = self.teacher_soft_targets(x, labels)
        ce = loss_lib.cross_entropy(targets, logits)
        distill = loss_lib.distillation_kl(q, logits, self.temperature)
        loss = (1.0 - self.alpha) * ce + self.alpha * distill
        terms = {"cross_entropy": ce, "distillation": distill, "target_true_mass": tf.gather(q, labels, batch_dims=1)}
        return logits, loss, terms

    def get_config(self):
        return {
            **super().get_config(),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "teacher_targets": self.teacher_targets,
            "seed": self.seed,
        }


registry.register("kd", TeacherDistillationModel, "knowledge distillation from a trained teacher", teacher=True)
registry.register("tfkd_self", TeacherDistillationModel, "teacher-free KD: a trained copy of the student teaches",
                  teacher=True, teacher_hint="; for tfkd_self, a model of the student's architecture trained with "
                  "--method standard.")
registry.register("isl", TeacherDistillationModel, "instance-level sequence learning: KD on an easy-to-hard "
                  "curriculum", teacher=True, curriculum=True)

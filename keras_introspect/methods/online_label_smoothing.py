"""Online Label Smoothing (Zhang et al., IEEE TIP 2021).

Each class c has a soft label S_c: the mean predicted distribution of the
training examples of class c that the model classified correctly in the
previous epoch (in the first epoch, label smoothing with 0.1). The loss
mixes the hard and the soft label:

    loss = a · CE(y, softmax(z)) + (1 - a) · CE(S_y, softmax(z)),   a = 0.5

As in the authors' code, a class none of whose examples was classified
correctly in the previous epoch gets an all-zero soft label (only the hard
term trains it). The statistics of an epoch are accumulated during its
training steps and become the soft labels at the first step of the next
epoch; under `tf.distribute` the sums run over the global batch.
"""

import keras
import tensorflow as tf

from keras_introspect import losses as loss_lib
from keras_introspect import options
from keras_introspect.methods import registry, tables
from keras_introspect.methods.base import ClassifierTrainer


@keras.saving.register_keras_serializable(package="keras_introspect")
class OnlineLabelSmoothingModel(ClassifierTrainer):
    """Class-wise soft labels from the model's own correct predictions of the last epoch.

    Args:
        backbone: Functional or Sequential classifier.
        alpha: a, the weight of the hard-label term.
        smoothing: the label smoothing of the first epoch's soft labels.
        **kwargs: passed to `keras.Model`.

    Example:
    >>> model = ki.OnlineLabelSmoothingModel(ki.architectures.resnet20(10))
    """

    TRAIN_TERMS = ("cross_entropy", "soft_cross_entropy")
    OPTIONS = {
        "alpha": options.Option(0.5, float, "weight of the hard-label term", range="unit"),
        "smoothing": options.Option(0.1, float, "label smoothing of the first epoch's soft labels",
                                    range="unit-open"),
    }

    def __init__(self, backbone, alpha=0.5, smoothing=0.1, **kwargs):
        super().__init__(backbone, **kwargs)
        checked = self._check_options(alpha=alpha, smoothing=smoothing)
        self.alpha = checked["alpha"]
        self.smoothing = smoothing = checked["smoothing"]
        c = self.num_classes
        first = keras.initializers.Constant(
            (tf.eye(c) * (1.0 - smoothing) + (1.0 - tf.eye(c)) * smoothing / (c - 1)).numpy()
        )
        self.soft_labels = tables.table_variable(self, "soft_labels", (c, c), first)
        self.sums = tables.table_variable(self, "prediction_sums", (c, c))
        self.counts = tables.table_variable(self, "correct_counts", (c,))
        self.statistics_epoch = tables.table_variable(self, "statistics_epoch", ())

    def _start_epoch_if_new(self):
        """At the first step of an epoch, last epoch's statistics become the soft labels.

        Written without a branch (a `tf.cond` cannot hold the cross-replica
        writes of a variable under MirroredStrategy): every step assigns, and
        only the first step of an epoch changes anything.
        """
        new = tf.cast(tf.not_equal(self.epoch, self.statistics_epoch), tf.float32)
        counts = tf.maximum(self.counts, 1.0)[:, None]  # no correct example: an all-zero soft label
        self.soft_labels.assign(new * (self.sums / counts) + (1.0 - new) * self.soft_labels)
        self.sums.assign((1.0 - new) * self.sums)
        self.counts.assign((1.0 - new) * self.counts)
        self.statistics_epoch.assign(self.epoch)
        return new

    def compute_terms(self, x, targets, labels, tape):
        del tape
        rolled = self._start_epoch_if_new()
        with tf.control_dependencies([rolled]):
            soft = tf.gather(tf.convert_to_tensor(self.soft_labels), labels)
        logits = self.logits(x, training=True)
        hard = loss_lib.cross_entropy(targets, logits)
        soft_ce = loss_lib.cross_entropy(soft, logits)
        loss = self.alpha * hard + (1.0 - self.alpha) * soft_ce
        # This epoch's statistics: the predicted distributions of the correctly classified examples.
        p = tf.stop_gradient(tf.nn.softmax(logits))
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        by_class = tf.one_hot(labels, self.num_classes) * correct[:, None]  # (batch, classes)
        sums = tables.sum_across_replicas(tf.matmul(by_class, p, transpose_a=True))
        counts = tables.sum_across_replicas(tf.reduce_sum(by_class, axis=0))
        self.sums.assign_add(sums)
        self.counts.assign_add(counts)
        return logits, loss, {"cross_entropy": hard, "soft_cross_entropy": soft_ce}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "smoothing": self.smoothing}


registry.register("ols", OnlineLabelSmoothingModel, "online label smoothing: class-wise soft labels from the last "
                  "epoch's correct predictions")

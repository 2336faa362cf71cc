"""PS-KD: self-knowledge distillation with progressive refinement of targets (Kim et al., ICCV 2021).

The target of an example mixes its label with the model's own prediction
for that example in the previous epoch, with a weight that grows linearly:

    q_t = (1 - a_t) · y + a_t · p_{t-1}(x),   a_t = a_T · (t + 1) / T,
    loss = CE(q_t, softmax(z))

for epoch t of T (counted from 0, as in the authors' code, where the first
epoch's "previous prediction" is the label itself). The predictions are the
softmax outputs of the training forward pass, stored per example: the
training data must carry each example's index (`data.with_example_id`,
`DataSplits.train_with_ids`).
"""

import keras
import tensorflow as tf

from keras_introspect import losses as loss_lib
from keras_introspect import options
from keras_introspect.errors import InputError
from keras_introspect.methods import registry, tables
from keras_introspect.methods.base import ClassifierTrainer


@keras.saving.register_keras_serializable(package="keras_introspect")
class ProgressiveSelfKDModel(ClassifierTrainer):
    """A classifier whose targets progressively include its own last-epoch predictions.

    Args:
        backbone: Functional or Sequential classifier.
        num_examples: size of the training set (the prediction table's rows).
        alpha: a_T, the weight of the previous prediction in the last epoch
            (0.8 in the paper's CIFAR and ImageNet experiments).
        **kwargs: passed to `keras.Model`.

    Example:
    >>> model = ki.ProgressiveSelfKDModel(backbone, num_examples=splits.num_train)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), metrics=["accuracy"])
    >>> model.fit(splits.train_with_ids, validation_data=splits.test, epochs=30)
    """

    TRAIN_TERMS = ("cross_entropy", "alpha", "target_true_mass")
    OPTIONS = {"alpha": options.Option(0.8, float, "weight of the last-epoch prediction at the end of training",
                                       range="unit")}
    needs_example_ids = True

    def __init__(self, backbone, num_examples, alpha=0.8, **kwargs):
        super().__init__(backbone, **kwargs)
        if num_examples is None:
            raise InputError("PS-KD keeps per-example state: pass num_examples (the training set's size).")
        if int(num_examples) < 1:
            raise InputError(f"num_examples must be >= 1, got {num_examples}.")
        self.num_examples = int(num_examples)
        self.alpha = self._check_options(alpha=alpha)["alpha"]
        self.predictions = tables.table_variable(self, "previous_predictions", (self.num_examples, self.num_classes))
        self.total_epochs = self.add_weight(name="total_epochs", shape=(), initializer="ones", trainable=False,
                                            dtype="float32")

    def current_alpha(self):
        """a_t = a_T · (t + 1) / T for the current epoch t (`fit` sets t and T)."""
        return self.alpha * tf.minimum((self.epoch + 1.0) / tf.maximum(self.total_epochs, 1.0), 1.0)

    def compute_terms(self, x, targets, labels, tape):
        del tape
        images, ids = tables.split_example_ids(x, self.num_examples)
        logits = self.logits(images, training=True)
        previous = tf.gather(tf.convert_to_tensor(self.predictions), ids)
        previous = tf.where(self.epoch < 0.5, targets, previous)  # epoch 0: the label is the "previous prediction"
        alpha = self.current_alpha()
        q = tf.stop_gradient((1.0 - alpha) * targets + alpha * previous)
        loss = loss_lib.cross_entropy(q, logits)
        all_ids, all_p = tables.gather_across_replicas(ids, tf.stop_gradient(tf.nn.softmax(logits)))
        tables.set_rows(self.predictions, all_ids, all_p)
        terms = {
            "cross_entropy": loss_lib.cross_entropy(targets, logits),
            "alpha": tf.fill(tf.shape(loss), alpha),
            "target_true_mass": tf.gather(q, labels, batch_dims=1),
        }
        return logits, loss, terms

    def get_config(self):
        return {**super().get_config(), "num_examples": self.num_examples, "alpha": self.alpha}


registry.register("pskd", ProgressiveSelfKDModel, "PS-KD: targets mix the label with the model's own last-epoch "
                  "prediction, with a rising weight", example_ids=True)

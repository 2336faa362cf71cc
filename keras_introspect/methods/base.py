"""The common shape of every training method: a model wrapping a backbone.

`ClassifierTrainer` is a `keras.Model` whose `call` is the backbone's, so
`predict` and serving behave like the backbone. Subclasses define the training
loss per example in `compute_terms`; this class does what Keras's own
TensorFlow `train_step` does and a naive override forgets:

* the loss is reduced like a Keras "sum_over_batch_size" loss, i.e. divided by
  the number of replicas, so gradients are right under `tf.distribute`;
* regularization losses of the backbone are added, scaled the same way;
* the loss is scaled by `optimizer.scale_loss` (mixed-precision loss scaling);
* the logged loss is un-scaled for distribution, and metrics go through
  `compute_metrics`.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect import losses as loss_lib
from keras_introspect.errors import InputError


class EpochCounter(keras.callbacks.Callback):
    """Writes the current epoch into `model.epoch` at the start of each epoch.

    Schedules inside the training step (warm-ups, phases) read that variable;
    `ClassifierTrainer.fit` adds this callback automatically.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(float(epoch))


class ClassifierTrainer(keras.Model):
    """Base class of the training methods: wraps a classifier backbone.

    Args:
        backbone: a Functional or Sequential `keras.Model` giving logits or
            softmax probabilities of shape `(batch, classes)`.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Subclasses implement `compute_terms(x, targets, labels, tape)` and list
    the per-example terms they log in `TRAIN_TERMS`.
    """

    TRAIN_TERMS = ("cross_entropy",)

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = backbones.check_classifier(backbone)
        self.backbone = backbone
        self.has_softmax = backbones.ends_in_softmax(backbone)
        self._views = backbones.Untracked({})
        self.epoch = self.add_weight(
            name="epoch", shape=(), initializer="zeros", trainable=False, dtype="float32"
        )
        self.term_trackers = {name: keras.metrics.Mean(name=name) for name in self.TRAIN_TERMS}
        if "cross_entropy" not in self.term_trackers:
            self.term_trackers["cross_entropy"] = keras.metrics.Mean(name="cross_entropy")
        self.built = True

    # -- views of the backbone ---------------------------------------------
    def view(self, layer_names=()):
        """A cached Functional model returning `[*layer outputs, logits]`."""
        key = tuple(layer_names)
        views = self._views.value
        if key not in views:
            views[key] = backbones.tap_model(self.backbone, key)
        return views[key]

    def logits(self, x, training=False):
        """Pre-softmax logits of the backbone, in float32."""
        return backbones.float32_logits(backbones.call_taps(self.view(), x, training)[-1])

    def as_prediction(self, logits):
        """Logits shaped like the backbone's own output (softmax if it has one)."""
        return tf.nn.softmax(logits) if self.has_softmax else logits

    def call(self, inputs, training=None):
        return self.backbone(inputs, training=training)

    # -- labels ---------------------------------------------------------------
    def prepare_targets(self, y):
        """Integer or one-hot labels → `(target distributions, int labels)`.

        Raises:
            ValueError: for a label shape that does not fit the classes.
            tf.errors.InvalidArgumentError: for integer labels out of range.
        """
        if y is None:
            raise InputError(
                f"{type(self).__name__} needs labels: pass (images, labels) to fit/evaluate."
            )
        y = tf.convert_to_tensor(y)
        classes = self.num_classes
        if y.shape.rank == 2 and y.shape[-1] == classes:
            targets = tf.cast(y, tf.float32)
            return targets, tf.argmax(targets, axis=-1, output_type=tf.int32)
        if y.shape.rank == 1 or (y.shape.rank == 2 and y.shape[-1] == 1):
            labels = tf.cast(tf.reshape(y, [-1]), tf.int32)
            labels = check_label_range(labels, classes)
            return tf.one_hot(labels, classes, dtype=tf.float32), labels
        raise InputError(
            f"Labels of shape {tuple(y.shape)} do not fit a {classes}-class model: "
            f"give integer labels of shape (batch,) or one-hot labels of shape (batch, {classes})."
        )

    # -- the loss -------------------------------------------------------------
    def compute_terms(self, x, targets, labels, tape):
        """Per-example training loss and logged terms of this method.

        Args:
            x: input batch.
            targets: `(batch, classes)` float32 label distributions.
            labels: `(batch,)` int32 class indices.
            tape: the outer `tf.GradientTape` recording the loss; work that
                must not be differentiated goes under `tape.stop_recording()`.

        Returns:
            `(logits, loss, terms)`: float32 logits, the `(batch,)` loss, and a
            dict of `(batch,)` tensors named as in `TRAIN_TERMS`.
        """
        del labels, tape
        logits = self.logits(x, training=True)
        ce = loss_lib.cross_entropy(targets, logits)
        return logits, ce, {"cross_entropy": ce}

    def _regularization(self):
        extra = self.losses
        if not extra:
            return 0.0
        total = tf.add_n([tf.cast(value, tf.float32) for value in extra])
        return total / tf.cast(loss_lib.num_replicas(), tf.float32)

    def _check_no_compiled_loss(self):
        if getattr(self, "loss", None) is not None:
            raise InputError(
                f"{type(self).__name__} computes its own loss; compile it without "
                f"`loss=` (got loss={self.loss!r}). Configure the method in its constructor."
            )

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_no_compiled_loss()
        targets, labels = self.prepare_targets(y)
        with tf.GradientTape() as tape:
            logits, per_example, terms = self.compute_terms(x, targets, labels, tape)
            loss = loss_lib.reduce_per_example(per_example, sample_weight)
            loss = loss + self._regularization()
            scaled_loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tape.gradient(scaled_loss, weights)
        self.optimizer.apply_gradients(zip(gradients, weights))
        self._track(loss, terms, sample_weight, x)
        return self.compute_metrics(x, y, self.as_prediction(logits), sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_no_compiled_loss()
        targets, _ = self.prepare_targets(y)
        logits = self.logits(x, training=False)
        ce = loss_lib.cross_entropy(targets, logits)
        loss = loss_lib.reduce_per_example(ce, sample_weight) + self._regularization()
        self._track(loss, {"cross_entropy": ce}, sample_weight, x)
        logs = self.compute_metrics(x, y, self.as_prediction(logits), sample_weight)
        train_only = set(self.term_trackers) - {"cross_entropy"}
        return {name: value for name, value in logs.items() if name not in train_only}

    def _track(self, loss, terms, sample_weight, x):
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        # The loss is this replica's share (divided by the replica count); the
        # tracker averages across replicas, so undo the division as Keras does.
        loss = loss * tf.cast(loss_lib.num_replicas(), tf.float32)
        if self._loss_tracker is not None:
            self._loss_tracker.update_state(loss, sample_weight=batch)
        for name, value in terms.items():
            weight = None if sample_weight is None else tf.reshape(sample_weight, [-1])
            self.term_trackers[name].update_state(value, sample_weight=weight)

    @property
    def metrics(self):
        tracked = list(super().metrics)
        known = {id(metric) for metric in tracked}
        tracked.extend(m for m in self.term_trackers.values() if id(m) not in known)
        return tracked

    # -- fit with the epoch counter and label checks ----------------------------
    def fit(self, x=None, y=None, *args, callbacks=None, validation_data=None, **kwargs):
        """`keras.Model.fit`, plus an `EpochCounter` for epoch-based schedules.

        Labels are checked before the compiled step too: XLA drops the
        in-graph assertions, so under `jit_compile=True` an out-of-range label
        would otherwise train silently.
        """
        callbacks = list(callbacks or [])
        if not any(isinstance(cb, EpochCounter) for cb in callbacks):
            callbacks.append(EpochCounter())
        x, y = self.checked_inputs(x, y)
        if isinstance(validation_data, tf.data.Dataset):
            validation_data, _ = self.checked_inputs(validation_data, None)
        return super().fit(x, y, *args, callbacks=callbacks, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x, y = self.checked_inputs(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def checked_inputs(self, x, y):
        """Validate labels outside the compiled step (arrays now, datasets lazily)."""
        if y is not None and not isinstance(y, tf.Tensor) and np.ndim(y) in (1, 2):
            labels = np.asarray(y)
            if labels.ndim == 1 or labels.shape[-1] == 1:
                labels = labels.reshape(-1)
                if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                    raise InputError(
                        f"labels must be in [0, {self.num_classes}); got values from "
                        f"{labels.min()} to {labels.max()}."
                    )
        if isinstance(x, tf.data.Dataset) and getattr(self, "jit_compile", False):
            x = x.map(self._check_element)
        return x, y

    def _check_element(self, *element):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element if len(element) > 1 else element[0])
        _, labels = self.prepare_targets(y)
        with tf.control_dependencies([labels]):
            y = tf.identity(y)
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    # -- serialization ----------------------------------------------------------
    def get_config(self):
        return {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"], custom_objects=custom_objects
        )
        return cls(**config)


def check_label_range(labels, num_classes):
    """Assert `0 <= labels < num_classes` in graph and eager mode."""
    checks = [
        tf.debugging.assert_non_negative(
            labels, message="labels must be >= 0 (got a negative class index)"
        ),
        tf.debugging.assert_less(
            labels,
            tf.constant(num_classes, tf.int32),
            message=f"labels must be < {num_classes}, the model's number of classes",
        ),
    ]
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(labels)


def maybe_stop_recording(tape):
    """`tape.stop_recording()` when there is a tape, else a no-op context."""
    return tape.stop_recording() if tape is not None else contextlib.nullcontext()

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
import copy

import keras
import numpy as np
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect import losses as loss_lib
from keras_introspect import options as options_lib
from keras_introspect import export as export_lib
from keras_introspect.errors import InputError, NonFiniteLossError, non_finite_weights


class EpochCounter(keras.callbacks.Callback):
    """Writes the current epoch into `model.epoch` at the start of each epoch.

    Schedules inside the training step (warm-ups, phases) read that variable,
    and a model with a `total_epochs` variable gets the run's length at the
    start. `ClassifierTrainer.fit` adds this callback automatically.
    """

    def on_train_begin(self, logs=None):
        # Schedules over the whole run (PS-KD's weight) read the run's length.
        if hasattr(self.model, "total_epochs"):
            self.model.total_epochs.assign(float(self.params["epochs"]))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(float(epoch))


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training with an error at the first step whose loss is NaN or infinite.

    Keras's `TerminateOnNaN` stops quietly and leaves NaN weights to be saved;
    this raises `NonFiniteLossError` naming the epoch and step, so that no
    artefact of a diverged run is written. `ClassifierTrainer.fit` adds it.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0
        self.epochs_begun = 0
        self.steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self.epochs_begun += 1

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise NonFiniteLossError(
                f"The training loss became {float(loss)} at epoch {self._epoch + 1}, step {batch + 1}. "
                "Check the inputs and labels for NaN or Inf, or lower the learning rate."
            )

    def on_epoch_end(self, epoch, logs=None):
        # A NaN input can vanish behind a ReLU in the forward pass and still
        # poison the weights through its gradient.
        bad = non_finite_weights(self.model.trainable_weights)
        if bad:
            raise NonFiniteLossError(
                f"Weights became NaN or infinite during epoch {epoch + 1} ({', '.join(bad[:3])}). "
                "Check the inputs and labels for NaN or Inf, or lower the learning rate."
            )


class ClassifierTrainer(keras.Model):
    """Base class of the training methods: wraps a classifier backbone.

    Args:
        backbone: a Functional or Sequential `keras.Model` giving logits or
            softmax probabilities of shape `(batch, classes)`.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Subclasses implement `compute_terms(x, targets, labels, tape)`, list
    the per-example terms they log in `TRAIN_TERMS` and declare their
    options in `OPTIONS` (see `keras_introspect.options`).
    """

    TRAIN_TERMS = ("cross_entropy",)
    # {name: options.Option}: the constructor's options, declared once — its checks, the registry and the
    # command line read them; each constructor default equals its Option's default (tested).
    OPTIONS = {}
    # Config keys holding serialized Keras objects (or lists of them) that `from_config` deserializes.
    NESTED_OBJECTS = ("backbone",)
    needs_example_ids = False  # True: training data is ({"images": x, "example_id": i}, y)

    @classmethod
    def method_options(cls):
        """The flat options `from_options` takes: the constructor's `OPTIONS` (IL adds its explainer's and targets')."""
        return dict(cls.OPTIONS)

    @classmethod
    def from_options(cls, backbone, **options):
        """The model from flat, checked `method_options` values (what `methods.registry.build_method` calls)."""
        return cls(backbone, **options)

    def _check_options(self, **values):
        """`values` checked against this class's `OPTIONS` (an `OptionError` names a bad one), as a dict."""
        return options_lib.check_all(self.OPTIONS, **values)

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = backbones.check_classifier(backbone)
        self.backbone = backbone
        self.has_softmax = backbones.ends_in_softmax(backbone)
        self._views = backbones.Untracked({})
        self.epoch = self.add_weight(
            name="epoch", shape=(), initializer="zeros", trainable=False, dtype="float32"
        )
        # Our own loss tracker (Keras's is private): train_step computes the loss itself.
        self.loss_tracker = keras.metrics.Mean(name="loss")
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
            if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
                raise RuntimeError(f"{type(self).__name__} builds the view {key} inside a replica's step: "
                                   "list it in view_keys() so that build_views() makes it before training.")
            views[key] = backbones.tap_model(self.backbone, key)
        return views[key]

    def view_keys(self):
        """The `view` keys this method's steps call (the logits' view `()`; methods tapping layers add theirs)."""
        return [()]

    def build_views(self):
        """Build every view the steps call before a strategy traces them.

        Built lazily inside the first replica's trace, a view's construction runs the backbone's
        synchronized BatchNorm all-reduces on that replica only: the replicas' collectives then no
        longer pair up and training aborts ("Shape mismatch in the collective instance").
        """
        for key in self.view_keys():
            self.view(key)

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
        if y.shape.rank is None:
            raise InputError("Labels have an unknown rank (e.g. from tf.py_function); give them a shape with "
                             "tf.ensure_shape(y, [None]) in the input pipeline.")
        if not (y.dtype.is_integer or y.dtype.is_floating):
            raise InputError(f"Labels must be numbers (class indices or one-hot rows), got dtype {y.dtype.name}.")
        classes = self.num_classes
        if y.shape.rank == 2 and y.shape[-1] == classes:
            targets = check_distributions(tf.cast(y, tf.float32))
            return targets, tf.argmax(targets, axis=-1, output_type=tf.int32)
        if y.shape.rank == 1 or (y.shape.rank == 2 and y.shape[-1] == 1):
            y = tf.reshape(y, [-1])
            if y.dtype.is_floating:
                # Casting 2.7 or NaN to int would train on a label nobody gave.
                check = tf.debugging.assert_equal(
                    y, tf.round(y), message="labels must be whole class indices (got a fractional, NaN or Inf value)"
                )
                with tf.control_dependencies([check] if check is not None else []):
                    y = tf.identity(y)
            # checked before the cast: an int64 label of 2**32 + 1 would wrap to 1
            labels = tf.cast(check_label_range(y, classes), tf.int32)
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
        y, sample_weight = metric_labels(y, targets, labels), check_sample_weight(sample_weight)
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
        targets, labels = self.prepare_targets(y)
        y, sample_weight = metric_labels(y, targets, labels), check_sample_weight(sample_weight)
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
        self.loss_tracker.update_state(loss, sample_weight=batch)
        for name, value in terms.items():
            weight = None if sample_weight is None else tf.reshape(sample_weight, [-1])
            self.term_trackers[name].update_state(value, sample_weight=weight)

    # -- fit with the epoch counter and label checks ----------------------------
    def fit(self, x=None, y=None, *args, callbacks=None, validation_data=None, **kwargs):
        """`keras.Model.fit`, plus an `EpochCounter` for epoch-based schedules.

        Labels are checked before the compiled step too: XLA drops the
        in-graph assertions, so under `jit_compile=True` an out-of-range label
        would otherwise train silently. A `tf.data.Dataset` carries its own
        shuffling, so for one `shuffle` defaults to False (Keras's default of
        True would only be ignored, with a warning on every call).
        """
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)
        callbacks = list(callbacks or [])
        for kind in (EpochCounter, StopOnNonFinite):
            if not any(isinstance(cb, kind) for cb in callbacks):
                callbacks.append(kind())
        guard = next(cb for cb in callbacks if isinstance(cb, StopOnNonFinite))
        x, y = self.checked_inputs(x, y)
        self.build_views()
        if isinstance(validation_data, tf.data.Dataset):
            validation_data, _ = self.checked_inputs(validation_data, None)
        history = super().fit(x, y, *args, callbacks=callbacks, validation_data=validation_data, **kwargs)
        if guard.epochs_begun and not guard.steps:
            raise InputError("fit ran no training step: the training data is empty.")
        return history

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x, y = self.checked_inputs(x, y)
        self.build_views()
        return super().evaluate(x, y, *args, **kwargs)

    def checked_inputs(self, x, y):
        """Validate labels outside the compiled step (arrays now, datasets lazily)."""
        if isinstance(x, tf.data.Dataset) and int(x.cardinality()) == 0:
            raise InputError("The dataset is empty: there is nothing to train or evaluate on.")
        if isinstance(x, (np.ndarray, tf.Tensor)) and x.shape and x.shape[0] == 0:
            raise InputError("The input array is empty: there is nothing to train or evaluate on.")
        if y is not None and not isinstance(y, tf.Tensor) and np.ndim(y) in (1, 2):
            labels = np.asarray(y)
            if labels.dtype.kind not in "biuf":  # strings, objects: numpy's own error would name a ufunc
                raise InputError(f"Labels must be numbers (class indices or one-hot rows), got an array of dtype "
                                 f"{labels.dtype} (e.g. {labels.ravel()[:1].tolist()}); convert them, "
                                 "e.g. y.astype(int).")
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
        targets, labels = self.prepare_targets(y)
        checks = [targets, labels] + ([] if sample_weight is None else [check_sample_weight(sample_weight)])
        with tf.control_dependencies(checks):
            y = tf.identity(y)
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    # -- export ------------------------------------------------------------------
    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras's `model.export`, for a wrapper whose graph is its backbone's.

        The TF SavedModel is `ki.export.export_saved_model`'s: `serving_default`
        (probabilities), plus `explain` with the model's explainer for
        introspective models; pass `normalization=(mean, std)` to take raw
        pixels. Other formats export the backbone with Keras.
        """
        if format != "tf_saved_model":
            return self.backbone.export(filepath, format=format, verbose=verbose, input_signature=input_signature,
                                        **kwargs)
        if input_signature is not None:
            raise InputError("export takes the backbone's input shape; input_signature is not supported here.")
        return export_lib.export_saved_model(self, filepath, **kwargs)

    # -- serialization ----------------------------------------------------------
    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = copy.deepcopy(config)  # Keras's deserialization consumes the nested configs it reads
        for key in cls.NESTED_OBJECTS:
            value = config[key]
            config[key] = ([keras.saving.deserialize_keras_object(v, custom_objects=custom_objects) for v in value]
                           if isinstance(value, list) else
                           keras.saving.deserialize_keras_object(value, custom_objects=custom_objects))
        return cls(**config)


def metric_labels(y, targets, labels):
    """The labels compiled metrics see: checked integer classes, or the checked distributions."""
    return labels if y.shape.rank == 1 or (y.shape.rank == 2 and y.shape[-1] == 1) else targets


def check_distributions(targets):
    """Assert one-hot or soft label rows: values in [0, 1] summing to 1 (±1e-3)."""
    message = "one-hot or soft labels must be rows of values in [0, 1] that sum to 1"
    checks = [
        tf.debugging.assert_greater_equal(targets, 0.0, message=message),
        tf.debugging.assert_less_equal(targets, 1.0, message=message),
        tf.debugging.assert_near(tf.reduce_sum(targets, -1), tf.ones_like(targets[:, 0]), atol=1e-3, message=message),
    ]
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(targets)


def check_sample_weight(sample_weight):
    """Assert finite, non-negative sample weights (a negative weight would reward mistakes)."""
    if sample_weight is None:
        return None
    shape = tf.convert_to_tensor(sample_weight).shape
    if shape.rank is not None and (shape.rank > 2 or shape.rank == 2 and shape[-1] not in (None, 1)):
        raise InputError(f"sample_weight must hold one weight per example, shape (batch,); got {tuple(shape)} "
                         "(for weights per class, use class_weight or weight each example by its class).")
    weight = tf.cast(sample_weight, tf.float32)
    message = "sample weights must be finite and >= 0"
    checks = [tf.debugging.assert_non_negative(weight, message=message),
              tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(weight)), True, message=message)]
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(sample_weight)


def check_label_range(labels, num_classes):
    """Assert `0 <= labels < num_classes` in graph and eager mode."""
    checks = [
        tf.debugging.assert_non_negative(
            labels, message="labels must be >= 0 (got a negative class index)"
        ),
        tf.debugging.assert_less(
            labels,
            tf.constant(num_classes, labels.dtype),
            message=f"labels must be < {num_classes}, the model's number of classes",
        ),
    ]
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(labels)


def maybe_stop_recording(tape):
    """`tape.stop_recording()` when there is a tape, else a no-op context."""
    return tape.stop_recording() if tape is not None else contextlib.nullcontext()

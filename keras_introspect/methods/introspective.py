"""Introspective learning: a classifier distils its own self-explanations.

At every training step the model explains its prediction for every class
(or for the true class plus the top-k others), compares the true class's
explanation with each class's, turns the similarities into a soft label q,
and distils q into itself as knowledge distillation distils a teacher:

    loss = (1 - a) · CE(y, softmax(z)) + a · T² · KL(q ‖ softmax(z / T))

with q held constant. See docs/method.md for the formulation and evidence.
"""

import keras
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect import explainers as explainer_lib
from keras_introspect import losses as loss_lib
from keras_introspect import soft_targets as targets_lib
from keras_introspect.methods.base import ClassifierTrainer, maybe_stop_recording
from keras_introspect.errors import InputError


@keras.saving.register_keras_serializable(package="keras_introspect")
class IntrospectiveModel(ClassifierTrainer):
    """A classifier that learns from its own explanations during `fit`.

    Args:
        backbone: Functional or Sequential classifier (logits or softmax).
        explainer: an `Explainer` or its name (`"cam"`, `"grad_cam"`,
            `"vanilla_gradients"`, `"gradient_input"`); default `CAM()` (signed maps).
            Offline-only explainers (SmoothGrad, Integrated Gradients) are rejected.
        soft_targets: an `ExplanationSoftTargets` (how similarities become q).
        alpha: weight a of the distillation term.
        temperature: T of the distillation KL.
        explained_classes: `"all"`, or an int k to explain the true class plus
            the k classes with the highest other logits (the rest get q = 0).
        warmup_epochs: epochs of plain cross-entropy before distillation starts.
        ramp_epochs: epochs over which a then rises linearly to `alpha`.
        **kwargs: passed to `keras.Model`.

    Example:
    >>> backbone = ki.architectures.resnet20(num_classes=10)
    >>> model = ki.IntrospectiveModel(backbone)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
    ...               metrics=["accuracy"])
    >>> model.fit(train_ds, validation_data=test_ds, epochs=30)
    >>> q = model.soft_targets(x, y)
    >>> maps = model.explain(x)
    """

    TRAIN_TERMS = ("cross_entropy", "distillation", "alpha", "target_true_mass", "target_entropy")

    def __init__(
        self,
        backbone,
        explainer=None,
        soft_targets=None,
        alpha=0.5,
        temperature=1.0,
        explained_classes="all",
        warmup_epochs=5,
        ramp_epochs=5,
        **kwargs,
    ):
        super().__init__(backbone, **kwargs)
        # CAM (signed maps): free to compute, and negative evidence is what
        # tells the classes apart (docs/method.md).
        self.explainer = explainer_lib.get("cam" if explainer is None else explainer)
        if self.explainer.offline_only:
            raise InputError(
                f"{type(self.explainer).__name__} needs several forward passes and "
                "cannot run inside the training step; choose cam, grad_cam, "
                "vanilla_gradients or gradient_input."
            )
        self.source_layer = self.explainer.source_layer(backbone)
        if soft_targets is None:
            soft_targets = targets_lib.ExplanationSoftTargets()
        elif isinstance(soft_targets, dict):
            soft_targets = keras.saving.deserialize_keras_object(soft_targets)
        self.target_builder = soft_targets
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"alpha must be in [0, 1], got {alpha}.")
        if not temperature > 0:
            raise InputError(f"temperature must be > 0, got {temperature}.")
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.explained_classes = _check_explained_classes(explained_classes, self.num_classes)
        if warmup_epochs < 0 or ramp_epochs < 0:
            raise InputError("warmup_epochs and ramp_epochs must be >= 0.")
        self.warmup_epochs = int(warmup_epochs)
        self.ramp_epochs = int(ramp_epochs)

    # -- schedule -------------------------------------------------------------
    def current_alpha(self):
        """a for the current epoch: 0 during warm-up, then a linear ramp."""
        progress = self.epoch - float(self.warmup_epochs) + 1.0
        if self.ramp_epochs > 0:
            factor = tf.clip_by_value(progress / float(self.ramp_epochs), 0.0, 1.0)
        else:
            factor = tf.cast(progress > 0.0, tf.float32)
        return self.alpha * factor

    # -- self-explanation --------------------------------------------------------
    def _select_classes(self, logits, labels):
        """Classes to explain and the true class's position among them."""
        if self.explained_classes == "all":
            return None, labels
        masked = tf.where(
            tf.one_hot(labels, self.num_classes) > 0.5, tf.float32.min, logits
        )
        others = tf.math.top_k(masked, k=self.explained_classes).indices
        classes = tf.concat([labels[:, None], others], axis=1)
        return classes, tf.zeros_like(labels)

    def introspect(self, x, labels, training=False, tape=None):
        """One forward pass, the self-explanations and the soft targets.

        Args:
            x: input batch.
            labels: `(batch,)` int32 true classes.
            training: run the backbone in training mode (the training step).
            tape: the outer tape of a training step, kept off the
                explanation work.

        Returns:
            `(logits, maps, q)`: float32 logits, the `(batch, k, ...)` maps and
            the `(batch, classes)` soft targets (gradient stopped).
        """
        view = self.view(() if self.source_layer is None else (self.source_layer,))
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            x = tf.cast(x, self.compute_dtype)
        with tf.GradientTape(persistent=True) as inner:
            if self.source_layer is None:
                inner.watch(x)
            outputs = backbones.call_taps(view, x, training)
            logits = tf.cast(outputs[-1], tf.float32)
        source = x if self.source_layer is None else outputs[0]
        with maybe_stop_recording(tape):
            classes, reference = self._select_classes(tf.stop_gradient(logits), labels)
            maps = self.explainer.maps_from_tape(inner, source, logits, classes, backbone=self.backbone)
            q = self.target_builder(maps, reference)
            if classes is not None:
                q = targets_lib.scatter_to_classes(q, classes, self.num_classes)
        del inner
        return logits, maps, tf.stop_gradient(q)

    def compute_terms(self, x, targets, labels, tape):
        logits, _, q = self.introspect(x, labels, training=True, tape=tape)
        ce = loss_lib.cross_entropy(targets, logits)
        exclude = labels if self.target_builder.form == "nontarget" else None
        distill = loss_lib.distillation_kl(q, logits, self.temperature, exclude=exclude)
        alpha = self.current_alpha()
        loss = (1.0 - alpha) * ce + alpha * distill
        terms = {
            "cross_entropy": ce,
            "distillation": distill,
            "alpha": tf.fill(tf.shape(ce), alpha),
            "target_true_mass": tf.gather(q, labels, batch_dims=1),
            "target_entropy": targets_lib.entropy(q),
        }
        return logits, loss, terms

    # -- user-facing inspection ---------------------------------------------------
    def soft_targets(self, x, y):
        """The soft labels the model teaches itself on `(x, y)` (inference mode).

        Returns:
            `(batch, classes)` numpy-convertible float32 tensor; rows sum to 1.
        """
        _, labels = self.prepare_targets(y)
        return self.introspect(x, labels, training=False)[2]

    def explain(self, x, classes=None):
        """Self-explanations with the training explainer, in inference mode.

        Args:
            x: `(batch, ...)` inputs.
            classes: `None` for the predicted class, an int or `(batch,)` array
                for one class per sample, `"all"` for every class.

        Returns:
            `(batch, ...)` maps for one class per sample, or `(batch, classes, ...)`
            for `"all"`.
        """
        if isinstance(classes, str):
            if classes != "all":
                raise InputError(f"classes must be None, an int, an array or 'all'; got {classes!r}.")
            return self.explainer(self.backbone, x, None)
        if classes is None:
            classes = tf.argmax(self.logits(x), axis=-1, output_type=tf.int32)
        return self.explainer(self.backbone, x, classes)[:, 0]

    # -- serialization --------------------------------------------------------------
    def get_config(self):
        return {
            **super().get_config(),
            "explainer": keras.saving.serialize_keras_object(self.explainer),
            "soft_targets": keras.saving.serialize_keras_object(self.target_builder),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "explained_classes": self.explained_classes,
            "warmup_epochs": self.warmup_epochs,
            "ramp_epochs": self.ramp_epochs,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["explainer"] = keras.saving.deserialize_keras_object(
            config["explainer"], custom_objects=custom_objects
        )
        return super().from_config(config, custom_objects=custom_objects)


def _check_explained_classes(value, num_classes):
    if value == "all":
        return "all"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"explained_classes must be 'all' or an int, got {value!r}.")
    if not 1 <= value <= num_classes - 1:
        raise InputError(
            f"explained_classes={value} must be between 1 and {num_classes - 1} "
            "(the number of non-true classes), or 'all'."
        )
    return value if value < num_classes - 1 else "all"

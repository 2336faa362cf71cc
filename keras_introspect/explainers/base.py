"""Shared machinery of the gradient explainers.

An explainer turns class scores into per-class maps. Two paths use it:

* **In a training step** (`maps_from_tape`): the step has already run ONE
  forward pass under a persistent `tf.GradientTape`; the explainer only takes
  gradients of the chosen class scores with respect to a *source* tensor (the
  input, or an inner layer's output) that the pass produced.
* **Offline** (`__call__`): the explainer runs its own forward pass(es) in
  inference mode, e.g. for plots, evaluation or serving.

Scores are logits (pre-softmax), the usual choice for saliency because the
softmax saturates; `score="log_probability"` explains log p(c | x) instead.
"""

import keras
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect.errors import InputError

SCORES = ("logit", "log_probability")


def class_scores(logits, score):
    """The per-class quantity whose gradient is the explanation."""
    logits = tf.cast(logits, tf.float32)
    if score == "logit":
        return logits
    if score == "log_probability":
        return tf.nn.log_softmax(logits, axis=-1)
    raise InputError(f"Unknown score {score!r}; expected one of {SCORES}.")


def selected_scores(scores, classes):
    """Score columns to explain, as a list of `(batch,)` tensors.

    Args:
        scores: `(batch, num_classes)` float tensor.
        classes: `None` for every class, or an int `(batch, k)` tensor of class
            indices chosen per sample (e.g. the true class plus top-k others).

    Returns:
        A Python list with one `(batch,)` tensor per explained column. The list
        is static so the per-class gradient loop unrolls in the graph.
    """
    if classes is None:
        return [scores[:, c] for c in range(scores.shape[-1])]
    chosen = tf.gather(scores, classes, batch_dims=1)
    return [chosen[:, j] for j in range(classes.shape[-1])]


def per_class_gradients(tape, logits, score, source, classes):
    """Gradient of every selected class score with respect to `source`.

    The score ops (softmax, column slices) are recorded by re-entering the
    persistent `tape`: a tape only differentiates what it recorded, and the
    forward pass that produced `logits` ran in an earlier `with tape:` block.
    Then one `tape.gradient` call per class. Samples are independent in inference
    mode, so the gradient of the batch sum is each sample's own gradient; in
    training mode BatchNorm couples samples through the batch statistics and
    the result is the gradient of the batch-summed score (see docs/method.md).

    Returns:
        `(batch, k, *source.shape[1:])` float32 tensor.
    """
    with tape:
        columns = selected_scores(class_scores(logits, score), classes)
    grads = []
    for column in columns:
        grad = tape.gradient(column, source, unconnected_gradients="zero")
        grads.append(tf.cast(grad, tf.float32))
    return tf.stack(grads, axis=1)


class Explainer:
    """Base class: computes per-class explanation maps.

    An explainer holds only its own settings, never a model: one instance can
    explain any number of models, in turn or at once (the model is an
    argument of every call). Subclasses implement `source_layer` (None: the
    input) and `maps_from_tape`. Explainers that need several
    forward passes (SmoothGrad, Integrated Gradients) set
    `offline_only = True` and implement `explain_batch` instead.

    Args:
        score: `"logit"` (default) or `"log_probability"`.
    """

    offline_only = False

    def __init__(self, score="logit"):
        if score not in SCORES:
            raise InputError(f"Unknown score {score!r}; expected one of {SCORES}.")
        self.score = score

    def source_layer(self, backbone):
        """The name of the layer whose output is the gradient source, or `None` for the input."""
        del backbone
        return None

    # -- the in-graph path --------------------------------------------------
    def maps_from_tape(self, tape, source, logits, classes=None, backbone=None):
        """Per-class maps from a pass already recorded on a persistent tape.

        Args:
            tape: persistent `tf.GradientTape` that recorded the forward pass
                (and watched `source` when it is the input).
            source: the input batch or the tapped layer's output.
            logits: `(batch, num_classes)` pre-softmax logits of that pass.
            classes: `None` (every class) or int `(batch, k)` class indices.
            backbone: the model that made the pass (CAM reads its head).

        Returns:
            `(batch, k, ...)` float32 maps.
        """
        raise NotImplementedError

    # -- the offline path ---------------------------------------------------
    def __call__(self, model, images, classes=None):
        """Explain `images` with `model` in inference mode.

        Args:
            model: a graph backbone, or any object with a `backbone` attribute
                (the library's wrapper models).
            images: `(batch, height, width, channels)` array or tensor.
            classes: `None` for every class, an int for one class for all
                samples, or an int array `(batch,)` / `(batch, k)`.

        Returns:
            `(batch, k, ...)` float32 tensor of maps.
        """
        backbone = graph_backbone(model)
        backbones.check_batch(backbone, images)
        images = tf.convert_to_tensor(images)
        images = tf.cast(images, keras.backend.floatx() if not images.dtype.is_floating else images.dtype)
        batch = images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]
        classes = normalize_classes(classes, batch, num_classes(backbone))
        return self.explain_batch(backbone, images, classes)

    def tap(self, backbone):
        """The backbone's view returning `[source layer output?, logits]` (cached per backbone)."""
        layer = self.source_layer(backbone)
        return backbones.cached_tap_model(backbone, () if layer is None else (layer,))

    def explain_batch(self, backbone, images, classes):
        """One inference-mode pass under a tape, then `maps_from_tape`."""
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(images)
            outputs = backbones.call_taps(self.tap(backbone), images)
            source = images if self.source_layer(backbone) is None else outputs[0]
            logits = outputs[-1]
        maps = self.maps_from_tape(tape, source, logits, classes, backbone=backbone)
        del tape
        return maps

    def mean_gradients_over_copies(self, backbone, expanded, copies, classes=None):
        """Per-class input gradients on `copies` adjacent variants of each image, averaged.

        Args:
            backbone: the classifier.
            expanded: `(batch * copies, ...)` inputs, each image's variants
                adjacent (noisy copies, points on a path).
            copies: variants per image.
            classes: `None` or int `(batch, k)`.

        Returns:
            `(batch, k, ...)` float32 mean gradients.
        """
        expanded = tf.convert_to_tensor(expanded)
        if classes is not None:
            classes = tf.repeat(classes, copies, axis=0)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(expanded)
            logits = backbones.call_taps(backbones.cached_tap_model(backbone), expanded)[-1]
        grads = per_class_gradients(tape, logits, self.score, expanded, classes)
        del tape
        shape = tf.concat([[-1, copies], tf.shape(grads)[1:]], axis=0)
        return tf.reduce_mean(tf.reshape(grads, shape), axis=1)

    def get_config(self):
        return {"score": self.score}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def graph_backbone(model):
    """The checked graph classifier of `model` (itself, or a library model's `backbone`)."""
    backbone = getattr(model, "backbone", model)
    backbones.check_classifier(backbone)
    return backbone


def num_classes(backbone):
    return int(backbone.outputs[0].shape[-1])


def normalize_classes(classes, batch_size, num_classes):
    """Turn the user's `classes` argument into `None` or an int32 `(batch, k)`."""
    if classes is None:
        return None
    classes = tf.convert_to_tensor(classes)
    if not classes.dtype.is_integer:
        raise InputError(f"classes must be integers, got dtype {classes.dtype.name}.")
    classes = tf.cast(classes, tf.int32)
    if classes.shape.rank == 0:
        classes = tf.fill([batch_size, 1], classes)
    elif classes.shape.rank == 1:
        classes = classes[:, None]
    if classes.shape.rank == 2 and isinstance(batch_size, int) and classes.shape[0] not in (None, batch_size):
        raise InputError(f"classes has {classes.shape[0]} rows for {batch_size} images; give one per image.")
    elif classes.shape.rank != 2:
        raise InputError(
            f"classes must be an int, (batch,) or (batch, k); got shape {classes.shape}."
        )
    tf.debugging.assert_non_negative(classes, message="class indices must be >= 0")
    tf.debugging.assert_less(
        classes, num_classes, message=f"class indices must be < {num_classes} (the number of classes)"
    )
    return classes


def spatial_reduce(maps, channel_axis=-1):
    """Collapse the channel axis of input-space maps for display (max |value|)."""
    return tf.reduce_max(tf.abs(maps), axis=channel_axis)

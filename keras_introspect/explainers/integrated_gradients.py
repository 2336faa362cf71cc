"""Integrated Gradients (Sundararajan et al., 2017)."""

import keras
import tensorflow as tf

from keras_introspect.explainers.base import Explainer, graph_backbone
from keras_introspect.errors import InputError


@keras.saving.register_keras_serializable(package="keras_introspect")
class IntegratedGradients(Explainer):
    """(x - baseline) ⊙ mean of the gradients along the straight path.

    The path points are `baseline + t (x - baseline)` for `t` in
    `linspace(0, 1, steps)`, averaged with equal weights (the Riemann rule that
    tf-explain also uses; tf-explain returns the mean gradient without the
    `(x - baseline)` factor).

    Offline only: `steps` forward passes per image.

    Args:
        steps: points on the path.
        baseline: a constant input value (0 = black image in normalized units).
        score: `"logit"` or `"log_probability"`.

    Example:
    >>> maps = IntegratedGradients(steps=32)(model, images)
    """

    offline_only = True

    def __init__(self, steps=32, baseline=0.0, score="logit"):
        super().__init__(score=score)
        if int(steps) < 2:
            raise InputError(f"steps must be >= 2, got {steps}.")
        self.steps = int(steps)
        self.baseline = float(baseline)

    def maps_from_tape(self, tape, source, logits, classes=None, backbone=None):
        raise InputError(
            "IntegratedGradients needs several forward passes per image and cannot "
            "explain from a training step's single pass; use it offline."
        )

    def path_gradients(self, model, images, classes=None):
        """Mean per-class gradient along the path (before the input factor)."""
        backbone = graph_backbone(model)
        images = tf.cast(tf.convert_to_tensor(images), tf.float32)
        baseline = tf.fill(tf.shape(images), self.baseline)
        t = tf.linspace(0.0, 1.0, self.steps)
        t = tf.reshape(t, [1, self.steps] + [1] * (images.shape.rank - 1))
        path = baseline[:, None] + t * (images - baseline)[:, None]
        path = tf.reshape(path, tf.concat([[-1], tf.shape(images)[1:]], axis=0))
        return self.mean_gradients_over_copies(backbone, path, self.steps, classes)

    def explain_batch(self, backbone, images, classes):
        images = tf.cast(images, tf.float32)
        grads = self.path_gradients(backbone, images, classes)
        return grads * (images - self.baseline)[:, None]

    def get_config(self):
        return {**super().get_config(), "steps": self.steps, "baseline": self.baseline}

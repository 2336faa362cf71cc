"""Gradient × input (Shrikumar et al., 2016)."""

import keras
import tensorflow as tf

from keras_introspect.explainers.vanilla_gradients import VanillaGradients


@keras.saving.register_keras_serializable(package="keras_introspect")
class GradientInput(VanillaGradients):
    """Input gradients multiplied element-wise by the input.

    Example:
    >>> maps = GradientInput()(model, images)      # (batch, classes, H, W, C)
    """

    def maps_from_tape(self, tape, source, logits, classes=None, backbone=None):
        grads = super().maps_from_tape(tape, source, logits, classes, backbone)
        return grads * tf.cast(source, tf.float32)[:, None]

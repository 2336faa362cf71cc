"""Grad-CAM (Selvaraju et al., 2017) at any spatial layer, every class at once."""

import keras
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect.explainers.base import Explainer, per_class_gradients


@keras.saving.register_keras_serializable(package="keras_introspect")
class GradCAM(Explainer):
    """Class activation maps weighted by spatially averaged gradients.

    map_c = relu(sum_k alpha_k^c A_k),  alpha_k^c = mean_hw d score_c / d A_hwk

    Args:
        layer: name of the spatial layer to explain; `None` picks the last
            layer with a (batch, height, width, channels) output.
        relu: keep only positive evidence (the original Grad-CAM). Off by
            default, as for `CAM`: similarities between class maps are more
            informative with the negative evidence that separates classes.
        score: `"logit"` or `"log_probability"`.

    Example:
    >>> maps = GradCAM()(model, images)        # (batch, classes, h, w)
    """

    def __init__(self, layer=None, relu=False, score="logit"):
        super().__init__(score=score)
        self.layer = layer
        self.relu = bool(relu)

    def source_layer(self, backbone):
        backbones.check_channels_last(backbone)
        if self.layer is None:
            return backbones.last_conv_layer_name(backbone)
        backbones.get_layer(backbone, self.layer)
        return self.layer

    def maps_from_tape(self, tape, source, logits, classes=None, backbone=None):
        grads = per_class_gradients(tape, logits, self.score, source, classes)  # (B, K, h, w, c)
        weights = tf.reduce_mean(grads, axis=(2, 3))  # (B, K, c)
        features = tf.cast(source, tf.float32)
        maps = tf.einsum("bhwc,bkc->bkhw", features, weights)
        return tf.nn.relu(maps) if self.relu else maps

    def get_config(self):
        return {**super().get_config(), "layer": self.layer, "relu": self.relu}

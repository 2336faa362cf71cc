"""Vanilla gradients (saliency; Simonyan et al., 2014): d score_c / d input."""

import keras

from keras_introspect.explainers.base import Explainer, per_class_gradients


@keras.saving.register_keras_serializable(package="keras_introspect")
class VanillaGradients(Explainer):
    """Input gradients of each class score.

    Example:
    >>> maps = VanillaGradients()(model, images)   # (batch, classes, H, W, C)
    """

    def maps_from_tape(self, tape, source, logits, classes=None, backbone=None):
        return per_class_gradients(tape, logits, self.score, source, classes)

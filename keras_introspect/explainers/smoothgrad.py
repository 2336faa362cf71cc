"""SmoothGrad (Smilkov et al., 2017): gradients averaged over noisy copies."""

import keras
import tensorflow as tf

from keras_introspect.explainers.base import Explainer, graph_backbone
from keras_introspect.errors import InputError


@keras.saving.register_keras_serializable(package="keras_introspect")
class SmoothGrad(Explainer):
    """Average input gradients over `num_samples` Gaussian-noised copies.

    Needs several forward passes per image, so it is for offline use
    (plots, evaluation), not for the training step.

    Args:
        num_samples: noisy copies per image.
        noise: standard deviation of the Gaussian noise, in input units.
        seed: an int fixes the noise, so the same images get the same maps on
            every call (and any subset of classes, slices of all of them);
            `None` draws new noise at each call.
        score: `"logit"` or `"log_probability"`.

    Example:
    >>> maps = SmoothGrad(num_samples=20, noise=0.1)(model, images)
    """

    offline_only = True

    def __init__(self, num_samples=20, noise=0.1, seed=None, score="logit"):
        super().__init__(score=score)
        if int(num_samples) < 1:
            raise InputError(f"num_samples must be >= 1, got {num_samples}.")
        self.num_samples = int(num_samples)
        self.noise = float(noise)
        self.seed = seed

    def maps_from_tape(self, tape, source, logits, classes=None, backbone=None):
        raise InputError(
            "SmoothGrad needs several forward passes per image and cannot explain "
            "from a training step's single pass; use it offline, or train with "
            "VanillaGradients, GradientInput, GradCAM or CAM."
        )

    def explain_batch(self, backbone, images, classes):
        repeated = tf.repeat(images, self.num_samples, axis=0)
        shape = tf.shape(repeated)
        if self.seed is None:
            noise = tf.random.normal(shape, stddev=self.noise, dtype=repeated.dtype)
        else:  # stateless: an op-seeded `tf.random.normal` draws new noise at every eager call
            noise = tf.random.stateless_normal(shape, seed=[int(self.seed), 0], stddev=self.noise,
                                               dtype=repeated.dtype)
        return self.average_gradients(backbone, repeated + noise, classes)

    def average_gradients(self, model, noisy_images, classes=None):
        """Mean per-class gradient over precomputed noisy copies.

        Args:
            model: the classifier (or a library model wrapping it).
            noisy_images: `(batch * num_samples, ...)`, each image's copies
                adjacent (as `tf.repeat` lays them out).
            classes: `None` or int `(batch, k)`.

        Returns:
            `(batch, k, ...)` float32 maps.
        """
        return self.mean_gradients_over_copies(graph_backbone(model), noisy_images, self.num_samples, classes)

    def get_config(self):
        return {
            **super().get_config(),
            "num_samples": self.num_samples,
            "noise": self.noise,
            "seed": self.seed,
        }

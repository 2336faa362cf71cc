"""Soft labels from explanation similarities.

Three forms, all held constant (stop-gradient) like a teacher's output:

* ``"softmax"`` — the pure similarity softmax
  q_j = exp(s_j / tau) / sum_i exp(s_i / tau), with s_y the true class's
  similarity to itself (1 for cosine).
* ``"mass"`` — mass-controlled: the true class keeps 1 - epsilon and the
  other classes share epsilon in proportion to exp(s_j / tau):
  q_y = 1 - epsilon, q_j = epsilon * exp(s_j / tau) / sum_{i != y} exp(s_i / tau).
  With equal similarities this is exactly label smoothing that spreads
  epsilon over the non-true classes.
* ``"nontarget"`` — decoupled: a distribution over the non-true classes only,
  q_j = exp(s_j / tau) / sum_{i != y} exp(s_i / tau), q_y = 0. Distilled
  against the student's own non-true distribution (as the non-target part of
  Decoupled KD, Zhao et al., 2022), it transfers the class-similarity
  structure without lowering the true class's confidence.
"""

import keras
import tensorflow as tf

from keras_introspect.soft_targets import similarity as similarity_lib
from keras_introspect import options

FORMS = ("mass", "softmax", "nontarget")


@keras.saving.register_keras_serializable(package="keras_introspect")
class ExplanationSoftTargets:
    """Turn per-class explanation maps into a soft label per sample.

    Args:
        form: `"mass"` (default), `"softmax"` or `"nontarget"`, see the module docstring.
        similarity: `"cosine"` (default), `"dot"` or `"euclidean"`.
        center: subtract each map's mean before comparing (default True).
        temperature: tau, the softmax temperature over similarities.
        epsilon: mass given to the non-true classes in the `"mass"` form.

    Example:
    >>> targets = ExplanationSoftTargets(form="mass", epsilon=0.1, temperature=0.1)
    >>> q = targets(maps, reference=labels)   # maps: (batch, classes, h, w)
    """

    OPTIONS = {
        "form": options.Option("mass", str, "how similarities become a soft label", choices=FORMS),
        "similarity": options.Option("cosine", str, "similarity of two explanation maps",
                                     choices=tuple(similarity_lib.SIMILARITIES)),
        "center": options.Option(True, bool, "subtract each map's mean before comparing"),
        "temperature": options.Option(0.1, float, "softmax temperature over similarities", range="positive"),
        "epsilon": options.Option(0.1, float, "mass on the non-true classes (form=mass)", range="unit-open"),
    }

    def __init__(self, form="mass", similarity="cosine", center=True, temperature=0.1, epsilon=0.1):
        # A similarity may also be a function `(flat maps, reference) → (batch, k)` (Python API only).
        named = {} if callable(similarity) else {"similarity": similarity}
        checked = options.check_all(self.OPTIONS, form=form, center=center, temperature=temperature,
                                    epsilon=epsilon, **named)
        self.form = checked["form"]
        self.similarity = checked.get("similarity", similarity)
        self.center = checked["center"]
        self.temperature = checked["temperature"]
        self.epsilon = checked["epsilon"]

    def similarities(self, maps, reference):
        """`(batch, k)` similarity of each map to the map at `reference`."""
        flat = similarity_lib.flatten_maps(maps, center=self.center)
        return similarity_lib.get(self.similarity)(flat, tf.cast(reference, tf.int32))

    def __call__(self, maps, reference):
        """Soft labels over the `k` explained classes.

        Args:
            maps: `(batch, k, ...)` explanation maps.
            reference: int `(batch,)`, position of the true class among the `k`.

        Returns:
            `(batch, k)` float32 distribution, gradient stopped.
        """
        sims = self.similarities(maps, reference)
        return tf.stop_gradient(self.from_similarities(sims, reference))

    def from_similarities(self, sims, reference, epsilon=None):
        """The soft label of each row of similarities (`epsilon`: a scheduled mass, default `self.epsilon`)."""
        epsilon = self.epsilon if epsilon is None else epsilon
        # sims is (batch, k): the true class's column is where the column index equals the reference.
        is_true = tf.equal(tf.range(tf.shape(sims)[1])[None, :], tf.cast(reference, tf.int32)[:, None])
        logits = sims / self.temperature
        # tf.nn.softmax normalizes over the last axis, the classes.
        if self.form == "softmax":
            return tf.nn.softmax(logits)
        others = tf.nn.softmax(tf.where(is_true, tf.float32.min, logits))
        if self.form == "nontarget":
            return tf.where(is_true, 0.0, others)
        return tf.where(is_true, 1.0 - epsilon, epsilon * others)

    def get_config(self):
        return {
            "form": self.form,
            "similarity": self.similarity,
            "center": self.center,
            "temperature": self.temperature,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def scatter_to_classes(q, classes, num_classes):
    """Place `(batch, k)` targets over chosen classes into `(batch, num_classes)`.

    Classes that were not explained (top-k mode) get zero mass.
    """
    batch = tf.shape(q)[0]
    rows = tf.repeat(tf.range(batch), tf.shape(classes)[1])
    indices = tf.stack([rows, tf.reshape(classes, [-1])], axis=1)
    return tf.scatter_nd(indices, tf.reshape(q, [-1]), tf.stack([batch, num_classes]))


def entropy(q):
    """Per-sample entropy (nats) of a distribution, 0·log 0 = 0."""
    return -tf.reduce_sum(tf.math.xlogy(q, q), axis=-1)

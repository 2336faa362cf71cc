"""Similarity between the true class's explanation and every class's.

All functions take maps flattened to `(batch, k, d)` and the position of the
reference (true-class) map among the `k`, and return `(batch, k)` float32.
"""

import tensorflow as tf
from keras_introspect.errors import InputError

EPSILON = 1e-8


def flatten_maps(maps, center=False):
    """Flatten `(batch, k, ...)` maps to `(batch, k, d)`.

    Args:
        center: subtract each map's mean first. Class maps of one image share a
            large common component (where the object is); centering removes it,
            so the similarity measures *how* the evidence is arranged rather
            than *that* there is an object (cosine of centered maps = Pearson
            correlation).
    """
    maps = tf.cast(maps, tf.float32)
    shape = tf.shape(maps)
    flat = tf.reshape(maps, tf.stack([shape[0], shape[1], -1]))
    if center:
        flat = flat - tf.reduce_mean(flat, axis=-1, keepdims=True)
    return flat


def _reference(flat, reference):
    return tf.gather(flat, reference[:, None], batch_dims=1)  # (B, 1, d)


def cosine(flat, reference):
    """Cosine similarity in [-1, 1]; 0 where a map is all zeros."""
    ref = _reference(flat, reference)
    dot = tf.reduce_sum(flat * ref, axis=-1)
    norms = tf.norm(flat, axis=-1) * tf.norm(ref, axis=-1)
    return dot / tf.maximum(norms, EPSILON)


def dot(flat, reference):
    """Inner product divided by the map size (scale-dependent)."""
    ref = _reference(flat, reference)
    size = tf.cast(tf.shape(flat)[-1], tf.float32)
    return tf.reduce_sum(flat * ref, axis=-1) / size


def euclidean(flat, reference):
    """Negative Euclidean distance between L2-normalized maps, in [-2, 0]."""
    unit = flat / tf.maximum(tf.norm(flat, axis=-1, keepdims=True), EPSILON)
    ref = _reference(unit, reference)
    return -tf.norm(unit - ref, axis=-1)


def projection(flat, reference):
    """Each map's component along the reference map, in units of it: <m_j, m_y> / <m_y, m_y>.

    1 for the reference itself. Unlike the cosine it keeps how *strongly* a map
    responds, not only how it is arranged: for uncentered CAM maps over spatially
    uniform features it is z_j / z_y, the ratio of the two classes' responses
    (logits without bias), so an example the model finds ambiguous gets similarities
    near 1 and a clear one similarities near 0 or below. 0 where the reference map is
    all zeros.
    """
    ref = _reference(flat, reference)
    energy = tf.reduce_sum(ref * ref, axis=-1)
    return tf.reduce_sum(flat * ref, axis=-1) / tf.maximum(energy, EPSILON)


SIMILARITIES = {"cosine": cosine, "dot": dot, "euclidean": euclidean, "projection": projection}


def get(name):
    if callable(name):
        return name
    if name not in SIMILARITIES:
        raise InputError(f"Unknown similarity {name!r}; choose one of {sorted(SIMILARITIES)}.")
    return SIMILARITIES[name]

"""How faithful is an explanation map? Deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018).

A map claims that some pixels matter more than others for a class. Take it at its word:

* **deletion**: replace the most-attributed pixels first by a baseline, in equal steps, and watch
  the class probability fall. A faithful map makes it fall fast: a *low* area under the curve.
* **insertion**: start from the baseline and put the most-attributed pixels back first. A faithful map
  makes the probability rise fast: a *high* area.

Both are read against the same curves for a random ranking of the pixels (`random_maps`), which is
what a map that knows nothing scores. Maps of any resolution are resized bilinearly to the image
(a 4×4 CAM becomes a smooth ranking); input-space maps with channels are collapsed by
`explainers.spatial_reduce` first. The baseline is a value in the model's input space: `0.0`, the
default, is the training set's mean pixel for standardized inputs.

Quantus implements such metrics, but its TensorFlow support requires Keras 2 (`keras<3`,
`tensorflow<2.16`), so this small implementation is tested against a hand computation instead
(tests/test_faithfulness.py).

Example:
>>> maps = ki.explainers.CAM()(model.backbone, x, classes=y[:, None])[:, 0]
>>> fractions, scores = deletion_curve(model, x, maps, y)
>>> area_under_curve(fractions, scores).mean()   # lower = more faithful
"""

import numpy as np
import tensorflow as tf

from keras_introspect import backbones
from keras_introspect.errors import InputError
from keras_introspect.explainers import spatial_reduce

MODES = ("deletion", "insertion")


def pixel_ranks(maps, image_size):
    """Each pixel's rank by attribution, 0 = most attributed: int `(n, H, W)`.

    Args:
        maps: `(n, h, w)` maps, or `(n, h, w, c)` input-space maps (channels collapsed).
        image_size: `(H, W)` of the images the ranks index.
    """
    maps = tf.convert_to_tensor(maps, tf.float32)
    if maps.shape.rank == 4:
        maps = spatial_reduce(maps)
    if maps.shape.rank != 3:
        raise InputError(f"maps must be (n, h, w) or (n, h, w, channels); got shape {tuple(maps.shape)}.")
    resized = tf.image.resize(maps[..., None], image_size, method="bilinear")[..., 0]
    flat = tf.reshape(resized, [tf.shape(resized)[0], -1]).numpy()
    # Stable sort: equal values keep reading order, so a constant map ranks like a raster scan.
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=1)
    return ranks.reshape((-1, *image_size))


def perturbation_curve(model, images, maps, classes, mode="deletion", steps=16, baseline=0.0, batch_size=64):
    """The class probability as the most-attributed pixels are deleted (or inserted) in `steps` steps.

    Args:
        model: a classifier (logits or softmax; a method's model or its backbone).
        images: `(n, H, W, C)` inputs, as the model takes them (normalized).
        maps: `(n, h, w)` or `(n, h, w, c)` attributions for `classes`.
        classes: int `(n,)`, the class each map explains.
        mode: `"deletion"` or `"insertion"`.
        steps: number of equal steps from no pixel to every pixel changed.
        baseline: what a removed pixel becomes (a number or an array broadcastable to one image).
        batch_size: images per forward pass.

    Returns:
        `(fractions, scores)`: `(steps + 1,)` fractions of pixels changed, and `(n, steps + 1)` class
        probabilities.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be an integer >= 1, got {steps!r}.")
    images = np.asarray(images, np.float32)
    classes = np.asarray(classes).astype("int64").reshape(-1)
    if images.ndim != 4 or len(classes) != len(images) or len(maps) != len(images):
        raise InputError(f"need one map and one class per image: {len(images)} images of shape "
                         f"{images.shape[1:]}, {len(maps)} maps, {len(classes)} classes.")
    height, width = images.shape[1:3]
    ranks = pixel_ranks(maps, (height, width))
    counts = np.round(np.linspace(0.0, 1.0, steps + 1) * height * width).astype("int64")
    background = np.broadcast_to(np.asarray(baseline, np.float32), images.shape[1:])
    probabilities = _probabilities(model)
    scores = np.empty((len(images), steps + 1), np.float32)
    per_pass = max(1, batch_size // (steps + 1))  # images whose whole curve fits one forward pass
    for start in range(0, len(images), per_pass):
        chunk = slice(start, start + per_pass)
        changed = ranks[chunk, None] < counts[None, :, None, None]  # (b, steps + 1, H, W)
        original = ~changed if mode == "deletion" else changed
        x = np.where(original[..., None], images[chunk, None], background)  # (b, steps + 1, H, W, C)
        p = probabilities(x.reshape((-1, *images.shape[1:]))).reshape((len(x), steps + 1, -1))
        scores[chunk] = np.take_along_axis(p, classes[chunk, None, None], axis=2)[..., 0]
    return counts / float(height * width), scores


def deletion_curve(model, images, maps, classes, **kwargs):
    """`perturbation_curve` with `mode="deletion"` (lower area = more faithful)."""
    return perturbation_curve(model, images, maps, classes, mode="deletion", **kwargs)


def insertion_curve(model, images, maps, classes, **kwargs):
    """`perturbation_curve` with `mode="insertion"` (higher area = more faithful)."""
    return perturbation_curve(model, images, maps, classes, mode="insertion", **kwargs)


def area_under_curve(fractions, scores):
    """Trapezoid area under each curve over the fraction of pixels changed: `(n,)`."""
    fractions, scores = np.asarray(fractions, np.float64), np.asarray(scores, np.float64)
    widths = np.diff(fractions)
    return ((scores[:, 1:] + scores[:, :-1]) / 2.0 * widths).sum(axis=1)


def random_maps(shape, seed=0):
    """Maps that know nothing: uniform noise of `shape` `(n, h, w)`, the reference a real map must beat."""
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _probabilities(model):
    """`x → class probabilities` for a classifier whose output is logits or a softmax."""
    softmax = model.has_softmax if hasattr(model, "has_softmax") else backbones.ends_in_softmax(model)

    def run(x):
        out = tf.cast(model(x, training=False), tf.float32)
        return (out if softmax else tf.nn.softmax(out)).numpy()

    return run

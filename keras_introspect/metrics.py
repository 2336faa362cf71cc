"""Metrics beyond accuracy: calibration.

Soft targets change how confident a classifier is, so every comparison of
distillation methods reports the expected calibration error (ECE) beside
accuracy (Guo et al., 2017): predictions are binned by their confidence,
and ECE is the example-weighted mean gap between each bin's accuracy and its
mean confidence.
"""

import numpy as np
from keras_introspect.errors import InputError


def expected_calibration_error(labels, probabilities, bins=15):
    """ECE of top-1 predictions with `bins` equal-width confidence bins.

    Args:
        labels: `(n,)` integer classes.
        probabilities: `(n, classes)` predicted distributions.
        bins: number of bins over (0, 1] (15 is the usual choice).

    Returns:
        A float in [0, 1].

    Example:
    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]])   # 0.5·0.1 + 0.5·0.8
    0.45
    """
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise InputError(
            f"probabilities must be (n, classes) for {len(labels)} labels; got shape {probabilities.shape}."
        )
    if len(labels) == 0:
        raise InputError("expected_calibration_error needs at least one example.")
    if not np.all(np.isfinite(probabilities)):
        raise InputError("probabilities contain NaN or Inf.")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of 0 joins the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(labels))

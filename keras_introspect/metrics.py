"""Metrics beyond accuracy: calibration.

Soft targets change how confident a classifier is, so every comparison of
distillation methods reports the expected calibration error (ECE) beside
accuracy (Guo et al., 2017): predictions are binned by their confidence,
and ECE is the example-weighted mean gap between each bin's accuracy and its
mean confidence. `reliability` gives the bins themselves — what a reliability
diagram draws, and whether a model is over- or under-confident.
"""

import numbers

import numpy as np

from keras_introspect.errors import InputError

# How far a row's sum may be from 1: loose, since a float16 softmax sums to 1 only within about 1e-3
# per class; a power of two, so that a row at exactly the tolerance can be tested.
SUM_TOLERANCE = 2**-7


def reliability(labels, probabilities, bins=15):
    """Accuracy and mean confidence of top-1 predictions in `bins` equal-width confidence bins.

    Bin b holds the confidences in (b/bins, (b+1)/bins].

    Args:
        labels: `(n,)` integer classes.
        probabilities: `(n, classes)` predicted distributions — softmax
            outputs, not logits (rows in [0, 1] summing to 1 within 2^-7).
        bins: number of bins over (0, 1] (15 is the usual choice).

    Returns:
        A dict of `(bins,)` arrays: `count` (examples per bin), `accuracy` and
        `confidence` (their means; NaN in an empty bin), and the bins' `upper`
        edges.

    Raises:
        InputError: naming the shape, labels, values or bins that are wrong.

    Example:
    >>> reliability([0, 1], [[0.9, 0.1], [0.8, 0.2]], bins=2)["accuracy"]
    array([nan, 0.5])
    """
    labels = np.ravel(labels)
    # float64 so that a float32 output is binned by its exact value: float32(0.6) lies above 0.6
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise InputError(
            f"probabilities must be (n, classes) for {len(labels)} labels; got shape {probabilities.shape}."
        )
    if len(labels) == 0:
        raise InputError("calibration needs at least one example.")
    classes = probabilities.shape[1]
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= classes:
        raise InputError(f"labels must be integer classes in [0, {classes}); got {labels.dtype} labels "
                         f"in [{labels.min()}, {labels.max()}].")
    if not np.all(np.isfinite(probabilities)):
        raise InputError("probabilities contain NaN or Inf.")
    sums = probabilities.sum(axis=1)
    if probabilities.min() < 0 or probabilities.max() > 1 or np.abs(sums - 1).max() > SUM_TOLERANCE:
        raise InputError(
            "probabilities must be distributions (rows in [0, 1] summing to 1): got values in "
            f"[{probabilities.min():.4g}, {probabilities.max():.4g}] and row sums in [{sums.min():.4g}, "
            f"{sums.max():.4g}]; pass softmax outputs, not logits."
        )
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
        raise InputError(f"bins must be a positive integer, got {bins!r}.")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # a distribution's largest entry is in (0, 1], so every index is in [0, bins)
    index = np.ceil(confidence * bins).astype(int) - 1
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore"):  # an empty bin's mean is NaN, not a warning
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
    return {"count": count, "accuracy": accuracy, "confidence": mean_confidence,
            "upper": np.arange(1, bins + 1) / bins}


def expected_calibration_error(labels, probabilities, bins=15):
    """ECE of top-1 predictions with `bins` equal-width confidence bins.

    Args:
        labels: `(n,)` integer classes.
        probabilities: `(n, classes)` predicted distributions (see `reliability`).
        bins: number of bins over (0, 1] (15 is the usual choice).

    Returns:
        A float in [0, 1].

    Example:
    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]])   # 0.5·0.1 + 0.5·0.8
    0.45
    """
    return calibration_error(reliability(labels, probabilities, bins))


def calibration_error(table):
    """ECE of a `reliability` table: the example-weighted mean gap between accuracy and confidence.

    For a caller that already has the table (e.g. to draw it), so the bins are
    not computed twice.

    Args:
        table: what `reliability` returns.

    Returns:
        A float in [0, 1].

    Example:
    >>> calibration_error(reliability([0, 1], [[0.9, 0.1], [0.8, 0.2]]))
    0.45
    """
    filled = table["count"] > 0
    gaps = np.abs(table["accuracy"][filled] - table["confidence"][filled])
    return float((table["count"][filled] * gaps).sum() / table["count"].sum())


# The range searched for a temperature: far beyond what a trained classifier needs (typically 1-3).
TEMPERATURE_BOUNDS = (0.05, 20.0)


def fit_temperature(labels, probabilities):
    """Post-hoc temperature scaling (Guo et al., 2017): the T that fits predictions to held-out labels.

    T minimizes the negative log-likelihood of `softmax(log(p) / T)` on `(labels, probabilities)`,
    which should be a validation split (never the test split). `log(p)` equals the logits up to a
    per-row constant, so this is the usual scaling of logits. The likelihood is convex in 1 / T;
    a bounded scalar search over [1/20, 1/0.05] finds its minimum.

    Args:
        labels: `(n,)` integer classes.
        probabilities: `(n, classes)` predicted distributions (see `reliability`).

    Returns:
        The temperature, a float in `TEMPERATURE_BOUNDS` (> 1: the model was over-confident).

    Example (fit on validation, apply to test):
    >>> over_confident = [[0.99, 0.01], [0.99, 0.01], [0.01, 0.99], [0.99, 0.01]]   # 3 of 4 right
    >>> t = fit_temperature([0, 0, 1, 1], over_confident)
    >>> round(t, 2), scale_temperature([[0.99, 0.01]], t).round(2).tolist()   # 0.75 after scaling
    (4.18, [[0.75, 0.25]])
    """
    from scipy.optimize import minimize_scalar

    reliability(labels, probabilities, bins=1)  # the same checks of shapes, labels and values
    log_p = np.log(np.maximum(np.asarray(probabilities, dtype="float64"), np.finfo("float64").tiny))
    true = log_p[np.arange(len(log_p)), np.ravel(labels)]

    def nll(inverse):
        scaled = log_p * inverse
        top = scaled.max(axis=1)
        return float(np.mean(top + np.log(np.exp(scaled - top[:, None]).sum(axis=1)) - true * inverse))

    low, high = TEMPERATURE_BOUNDS
    result = minimize_scalar(nll, bounds=(1.0 / high, 1.0 / low), method="bounded",
                             options={"xatol": 1e-6})
    return float(1.0 / result.x)


def scale_temperature(probabilities, temperature):
    """`softmax(log(p) / T)`: distributions rescaled by a temperature (`fit_temperature`).

    Example:
    >>> scale_temperature([[0.8, 0.2]], 2.0)   # sqrt(0.8) : sqrt(0.2) = 2 : 1
    array([[0.66666667, 0.33333333]])
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be a finite number > 0, got {temperature}.")
    log_p = np.log(np.maximum(np.asarray(probabilities, dtype="float64"), np.finfo("float64").tiny)) / temperature
    log_p -= log_p.max(axis=1, keepdims=True)
    scaled = np.exp(log_p)
    return scaled / scaled.sum(axis=1, keepdims=True)

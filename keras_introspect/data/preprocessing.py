"""What a backbone expects its pixels to be: the dataset's statistics, raw pixels, or a Keras
Applications family's `preprocess_input`.

Every choice is a per-channel scaling `(x - mean) / std` of the pixels as loaded (0–255 for
photos), so the pipelines, `DataSplits.normalization` and the exported SavedModel (which takes raw
0–255 requests and applies the same scaling) agree whatever was chosen:

* `"standardize"` (default) — the training images' own per-channel mean and std.
* `"raw"` — the pixels as loaded (mean 0, std 1), for bases that carry their preprocessing inside
  (EfficientNet/EfficientNetV2, MobileNetV3, ConvNeXt, RegNet, ResNet-RS with their default
  `include_preprocessing=True`).
* a `keras.applications` module name (`"resnet_v2"`, `"mobilenet_v2"`, `"inception_v3"`,
  `"densenet"`, …) — that family's `preprocess_input`, read off the function itself: its values
  at 0 and 255 give the scaling, which is then checked against the function on random pixels.
  Families whose `preprocess_input` is not a per-channel scaling ("caffe" mode — ResNet50, VGG —
  turns RGB into BGR) are refused with a clear error.
"""

import numpy as np

from keras_introspect.errors import InputError

DEFAULT = "standardize"
OWN = ("standardize", "raw")


def family_function(name):
    """The `preprocess_input` of a `keras.applications` module, or an `InputError` listing the names."""
    import keras

    module = getattr(keras.applications, name, None)
    function = getattr(module, "preprocess_input", None)
    if function is None:
        families = sorted(n for n in dir(keras.applications)
                          if hasattr(getattr(keras.applications, n), "preprocess_input"))
        raise InputError(f"Unknown preprocessing {name!r}: use {', '.join(OWN)} or a keras.applications family "
                         f"({', '.join(families)}).")
    return function


def statistics(preprocessing, computed=None, channels=3):
    """The per-channel `(mean, std)` that realise `preprocessing` as `(x - mean) / std`.

    Args:
        preprocessing: `"standardize"`, `"raw"` or a `keras.applications` module name.
        computed: the dataset's own `(mean, std)` (needed for `"standardize"`).
        channels: the images' channels.

    Returns:
        `(mean, std)`, float32 arrays of shape `(channels,)`.

    Raises:
        InputError: an unknown name, a family on images that are not RGB, or a family whose
            `preprocess_input` is not a per-channel scaling.

    Example:
    >>> statistics("resnet_v2")   # x / 127.5 - 1
    (array([127.5, 127.5, 127.5], dtype=float32), array([127.5, 127.5, 127.5], dtype=float32))
    """
    preprocessing = DEFAULT if preprocessing is None else str(preprocessing)
    if preprocessing == "standardize":
        if computed is None:
            raise InputError("standardize needs the dataset's statistics.")
        return tuple(np.asarray(v, dtype="float32") for v in computed)
    if preprocessing == "raw":
        return np.zeros(channels, "float32"), np.ones(channels, "float32")
    function = family_function(preprocessing)
    if channels != 3:
        raise InputError(f"keras.applications.{preprocessing}.preprocess_input expects RGB images; these have "
                         f"{channels} channel(s).")
    low = np.asarray(function(np.zeros((1, 1, 1, 3), "float32")), dtype="float64").reshape(3)
    high = np.asarray(function(np.full((1, 1, 1, 3), 255.0, "float32")), dtype="float64").reshape(3)
    if np.any(high == low):
        raise InputError(f"keras.applications.{preprocessing}.preprocess_input is constant in a channel; "
                         "it cannot be used as preprocessing.")
    std = 255.0 / (high - low)
    mean = -low * std
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    expected = np.asarray(function(pixels.copy()), dtype="float64")
    if not np.allclose((pixels - mean) / std, expected, atol=1e-3 * float(np.abs(high - low).max())):
        raise InputError(f"keras.applications.{preprocessing}.preprocess_input is not a per-channel scaling of RGB "
                         "pixels (\"caffe\" mode turns RGB into BGR); use a family that scales each channel "
                         "(e.g. resnet_v2 instead of resnet50), or raw pixels with the preprocessing in the model.")
    return mean.astype("float32"), std.astype("float32")



def as_mean_std(normalization, channels=None):
    """`(mean, std)` from a `(mean, std)` pair or a `{"mean", "std"}` dict (None stays None).

    Args:
        channels: the model's input channels; each statistic must then have 1 or `channels` entries.

    Raises:
        InputError: a malformed pair, a non-finite value, a std ≤ 0 (every response would be NaN or
            infinite), or a length that fits neither one channel nor `channels`.
    """
    if normalization is None:
        return None
    if isinstance(normalization, dict):
        missing = {"mean", "std"} - set(normalization)
        if missing:
            raise InputError(f"normalization dict lacks {sorted(missing)}; give {{'mean': [...], 'std': [...]}}")
        mean, std = normalization["mean"], normalization["std"]
    else:
        try:
            mean, std = normalization
        except (TypeError, ValueError):
            raise InputError("normalization must be (mean, std) per channel or {'mean': ..., 'std': ...}; "
                             f"got {type(normalization).__name__}") from None
    for name, value in (("mean", mean), ("std", std)):
        try:
            array = np.asarray(value, dtype="float64").ravel()
        except (TypeError, ValueError):
            raise InputError(f"normalization {name} must be numbers, got {value!r}.") from None
        if not np.all(np.isfinite(array)):
            raise InputError(f"normalization {name} {array.tolist()} is not finite.")
        if channels is not None and len(array) not in (1, channels):
            raise InputError(f"normalization {name} has {len(array)} values for a model with {channels} "
                             "input channel(s); give one per channel (or one for all).")
    if np.any(np.asarray(std, dtype="float64") <= 0):
        raise InputError(f"normalization std {np.asarray(std).tolist()} must be > 0 in every channel.")
    return mean, std


__all__ = ["DEFAULT", "OWN", "as_mean_std", "family_function", "statistics"]

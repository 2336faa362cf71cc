"""Keras Applications bases as backbones: `keras:<Family>` names, e.g. `keras:MobileNetV3Small`.

The base sits in a Functional classifier the way transfer learning puts it there —
`base(inputs, training=False)` → GlobalAveragePooling2D → Dense(classes) — so CAM reads the base's
output and Grad-CAM can address any layer inside it as `"<base name>/<layer>"`.
"""

import keras

from keras_introspect.errors import InputError

PREFIX = "keras:"
WEIGHTS = ("none", "imagenet")


def constructor(family):
    """The `keras.applications` constructor of `family`, or an `InputError` listing the families."""
    build = getattr(keras.applications, family, None)
    if not callable(build) or isinstance(build, type(keras)):
        families = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise InputError(f"Unknown Keras Applications family {family!r}; choose one of {', '.join(families)}.")
    return build


def family_preprocessing(family):
    """The `keras.applications` module whose `preprocess_input` matches `family` (e.g. `"mobilenet_v3"`).

    Families that carry their preprocessing inside have an identity there, which `data.preprocessing`
    reads as raw pixels.
    """
    return constructor(family).__module__.rsplit(".", 1)[-1]


def application(family, num_classes, input_shape, weights="none"):
    """A classifier around a Keras Applications base.

    Args:
        family: a `keras.applications` constructor name, e.g. `"MobileNetV3Small"`.
        num_classes: the Dense head's outputs (logits).
        input_shape: `(height, width, 3)`; Keras Applications need at least 32×32 RGB.
        weights: `"none"` (random initialisation) or `"imagenet"` (downloaded by Keras into
            `~/.keras/models` on first use).

    Returns:
        A Functional `keras.Model`: base → GlobalAveragePooling2D → Dense.

    Raises:
        InputError: an unknown family or weights, an input the family cannot take, or ImageNet
            weights that cannot be fetched.

    Example:
    >>> backbone = application("MobileNetV3Small", 10, (96, 96, 3), weights="imagenet")
    """
    build = constructor(family)
    weights = "none" if weights is None else weights
    if weights not in WEIGHTS:
        raise InputError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    try:
        base = build(include_top=False, weights=None if weights == "none" else weights,
                     input_shape=tuple(input_shape))
    except ValueError as error:  # Keras's own checks: input size, channels
        raise InputError(f"{family} cannot take inputs of shape {tuple(input_shape)}: {error}") from None
    except Exception as error:  # the download: URLError, HTTPError, OSError, ...
        raise InputError(f"{family}'s ImageNet weights could not be fetched ({type(error).__name__}: {error}); "
                         "use weights none, or put the weights file in ~/.keras/models on a machine without "
                         "internet access.") from None
    inputs = keras.Input(tuple(input_shape), name="images")
    features = base(inputs, training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(inputs, logits, name=f"{base.name}_classifier")


__all__ = ["PREFIX", "WEIGHTS", "application", "constructor", "family_preprocessing"]

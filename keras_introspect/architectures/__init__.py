"""Classifier backbones: Functional models with named layers that output logits."""

import keras

from keras_introspect.architectures import applications
from keras_introspect.architectures.digits_cnn import digits_cnn
from keras_introspect.architectures.resnet18 import resnet18, resnet18_w32
from keras_introspect.architectures.resnet_cifar import (
    resnet20,
    resnet32,
    resnet56,
    resnet110,
    resnet_cifar,
)
from keras_introspect.architectures.wide_resnet import wide_resnet, wrn16_2, wrn40_2
from keras_introspect.errors import InputError

ARCHITECTURES = {
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet18": resnet18,
    "resnet18_w32": resnet18_w32,
    "wrn16_2": wrn16_2,
    "wrn40_2": wrn40_2,
    "digits_cnn": digits_cnn,
}


def _all_layers(model):
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)


def set_batchnorm_momentum(model, momentum):
    """Set the moving-statistics momentum of every BatchNormalization layer.

    Keras' default, 0.99, averages the statistics over ~100 steps: a run of a
    few dozen steps evaluates with statistics still near their initial values
    (and near-chance test accuracy). 0.9 — PyTorch's default — suits short runs.
    Call it before the first training step.

    Args:
        model: any Keras model (nested models are searched too).
        momentum: a float in [0, 1).

    Returns:
        `model`, for chaining.

    Example:
        >>> backbone = set_batchnorm_momentum(resnet20(10), 0.9)
    """
    if not 0.0 <= momentum < 1.0:
        raise InputError(f"BatchNormalization momentum must be in [0, 1), got {momentum}.")
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        raise InputError(f"Model {model.name!r} has no BatchNormalization layer to set the momentum of.")
    for layer in layers:
        layer.momentum = float(momentum)
    return model


def get(name, num_classes, input_shape, bn_momentum=None, weights=None):
    """Build an architecture by name.

    Args:
        name: one of `ARCHITECTURES` (`"resnet8"`-style names of any 6n+2 depth work too), or
            `"keras:<Family>"` for a Keras Applications base (`applications.application`).
        num_classes: output logits.
        input_shape: `(height, width, channels)`.
        bn_momentum: BatchNormalization momentum (None: Keras' 0.99); see
            `set_batchnorm_momentum`.
        weights: for `keras:` names, `"none"` (or None) or `"imagenet"`; the library's own architectures
            have no pretrained weights.
    """
    key = name.lower().replace("-", "")
    if name.startswith(applications.PREFIX):
        model = applications.application(name[len(applications.PREFIX):], num_classes, input_shape, weights=weights)
    elif weights not in (None, "none"):
        raise InputError(f"{name} has no pretrained weights; weights={weights!r} is for keras:<Family> architectures.")
    elif key in ARCHITECTURES:
        model = ARCHITECTURES[key](num_classes=num_classes, input_shape=input_shape)
    elif key.startswith("resnet") and key[6:].isdigit():
        model = resnet_cifar(int(key[6:]), num_classes, input_shape=input_shape)
    else:
        raise InputError(f"Unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)} or "
                         f"{applications.PREFIX}<Family> (a keras.applications model, e.g. keras:MobileNetV3Small).")
    return model if bn_momentum is None else set_batchnorm_momentum(model, bn_momentum)


__all__ = [
    "ARCHITECTURES",
    "applications",
    "digits_cnn",
    "get",
    "resnet110",
    "resnet18",
    "resnet18_w32",
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet_cifar",
    "set_batchnorm_momentum",
    "wide_resnet",
    "wrn16_2",
    "wrn40_2",
]

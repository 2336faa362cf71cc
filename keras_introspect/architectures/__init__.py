"""Classifier backbones: Functional models with named layers that output logits."""

from keras_introspect.architectures.digits_cnn import digits_cnn
from keras_introspect.architectures.resnet18 import resnet18
from keras_introspect.architectures.resnet_cifar import (
    resnet20,
    resnet32,
    resnet56,
    resnet110,
    resnet_cifar,
)
from keras_introspect.architectures.wide_resnet import wide_resnet, wrn16_2, wrn40_2

ARCHITECTURES = {
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet18": resnet18,
    "wrn16_2": wrn16_2,
    "wrn40_2": wrn40_2,
    "digits_cnn": digits_cnn,
}


def get(name, num_classes, input_shape):
    """Build an architecture by name.

    Args:
        name: one of `ARCHITECTURES` (`"resnet8"`-style names of any 6n+2 depth work too).
        num_classes: output logits.
        input_shape: `(height, width, channels)`.
    """
    key = name.lower().replace("-", "")
    if key in ARCHITECTURES:
        return ARCHITECTURES[key](num_classes=num_classes, input_shape=input_shape)
    if key.startswith("resnet") and key[6:].isdigit():
        return resnet_cifar(int(key[6:]), num_classes, input_shape=input_shape)
    raise ValueError(f"Unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}.")


__all__ = [
    "ARCHITECTURES",
    "digits_cnn",
    "get",
    "resnet110",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet_cifar",
    "wide_resnet",
    "wrn16_2",
    "wrn40_2",
]

"""Wide ResNets (Zagoruyko & Komodakis, 2016): WRN-depth-k, pre-activation blocks."""

import keras
from keras import layers

from keras_introspect.architectures.resnet_cifar import classifier_head
from keras_introspect.errors import InputError


def _bn_relu(x, name):
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _conv(x, filters, kernel_size, strides, name):
    return layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name,
    )(x)


def wide_block(x, filters, strides, name):
    """BN-ReLU-conv ×2 with a 1×1 projection when the shape changes."""
    pre = _bn_relu(x, f"{name}_pre")
    y = _conv(pre, filters, 3, strides, f"{name}_conv1")
    y = _bn_relu(y, f"{name}_mid")
    y = _conv(y, filters, 3, 1, f"{name}_conv2")
    if strides != 1 or x.shape[-1] != filters:
        x = _conv(pre, filters, 1, strides, f"{name}_shortcut")
    return layers.Add(name=f"{name}_add")([y, x])


def wide_resnet(depth, widen, num_classes=10, input_shape=(32, 32, 3), name=None):
    """WRN-`depth`-`widen` (depth = 6n + 4).

    Returns:
        A Functional `keras.Model`; its last spatial layer is `features`.
    """
    if depth < 10 or (depth - 4) % 6:
        raise InputError(f"A Wide ResNet has depth 6n + 4 (16, 28, 40, ...); got {depth}.")
    blocks = (depth - 4) // 6
    inputs = keras.Input(input_shape, name="images")
    x = _conv(inputs, 16, 3, 1, "stem_conv")
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = wide_block(x, filters * widen, strides, f"stage{stage + 1}_block{block + 1}")
    x = _bn_relu(x, "final")
    x = layers.Activation("linear", name="features")(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name=name or f"wrn{depth}_{widen}")


def wrn16_2(num_classes=10, **kwargs):
    return wide_resnet(16, 2, num_classes, **kwargs)


def wrn40_2(num_classes=10, **kwargs):
    return wide_resnet(40, 2, num_classes, **kwargs)

"""ResNets for 32×32 images (He et al., 2016, §4.2): ResNet-20/32/56/110.

Three stages of basic blocks with 16, 32 and 64 filters (times `width`),
`(depth - 2) / 6` blocks per stage, a 3×3 stem, global average pooling and a
Dense head that outputs logits. Shortcuts that change shape use a 1×1
convolution with BatchNorm (option B) rather than zero padding (option A),
so every layer is a stock Keras layer and the model serializes without
custom code; it adds 0.6% parameters to ResNet-20.
"""

import keras
from keras import layers
from keras_introspect.errors import InputError


def conv_bn(x, filters, kernel_size, strides, name, activation=True):
    """Conv (no bias) → BatchNorm (→ ReLU): the unit every ResNet here uses."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def basic_block(x, filters, strides, name):
    """Two 3×3 conv-BN units with a residual connection."""
    shortcut = x
    y = conv_bn(x, filters, 3, strides, f"{name}_1")
    y = conv_bn(y, filters, 3, 1, f"{name}_2", activation=False)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = conv_bn(shortcut, filters, 1, strides, f"{name}_shortcut", activation=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def classifier_head(x, num_classes, name="logits"):
    """GAP → Dense logits: the head CAM reads in closed form."""
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dense(num_classes, name=name)(x)


def resnet_cifar(depth, num_classes=10, input_shape=(32, 32, 3), width=1, name=None):
    """A CIFAR ResNet of the given depth (6n + 2).

    Args:
        depth: 20, 32, 44, 56, 110, ... (any 6n + 2).
        num_classes: number of output logits.
        input_shape: `(height, width, channels)`.
        width: multiplier of the 16/32/64 filters.
        name: model name (default `resnet{depth}`).

    Returns:
        A Functional `keras.Model` with named layers whose last spatial layer
        is `features` (input of the GAP head).
    """
    if depth < 8 or (depth - 2) % 6:
        raise InputError(f"A CIFAR ResNet has depth 6n + 2 (20, 32, 56, 110, ...); got {depth}.")
    blocks = (depth - 2) // 6
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, 16 * width, 3, 1, "stem")
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, filters * width, strides, f"stage{stage + 1}_block{block + 1}")
    x = layers.Activation("linear", name="features")(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name=name or f"resnet{depth}")


def resnet20(num_classes=10, **kwargs):
    """ResNet-20 (0.27 M parameters at 10 classes)."""
    return resnet_cifar(20, num_classes, **kwargs)


def resnet32(num_classes=10, **kwargs):
    return resnet_cifar(32, num_classes, **kwargs)


def resnet56(num_classes=10, **kwargs):
    return resnet_cifar(56, num_classes, **kwargs)


def resnet110(num_classes=10, **kwargs):
    return resnet_cifar(110, num_classes, **kwargs)

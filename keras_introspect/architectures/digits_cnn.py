"""A small CNN for scikit-learn's 8×8 `digits` (the zero-download default)."""

import keras
from keras import layers

from keras_introspect.architectures.resnet_cifar import classifier_head, conv_bn


def digits_cnn(num_classes=10, input_shape=(8, 8, 1), width=32, name="digits_cnn"):
    """Three conv-BN-ReLU units (8×8 → 4×4) and a GAP → Dense head.

    Returns:
        A Functional `keras.Model`; its last spatial layer is `features`.
    """
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, width, 3, 1, "conv1")
    x = conv_bn(x, 2 * width, 3, 2, "conv2")
    x = conv_bn(x, 2 * width, 3, 1, "conv3")
    x = layers.Activation("linear", name="features")(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name=name)

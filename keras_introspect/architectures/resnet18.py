"""ResNet-18 adapted to 32×32 inputs (3×3 stem, no max-pool), 11 M parameters."""

import keras
from keras import layers

from keras_introspect.architectures.resnet_cifar import basic_block, classifier_head, conv_bn


def resnet18(num_classes=10, input_shape=(32, 32, 3), name="resnet18"):
    """The ResNet-18 used by most CIFAR distillation papers.

    Returns:
        A Functional `keras.Model`; its last spatial layer is `features`.
    """
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, 64, 3, 1, "stem")
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, filters, strides, f"stage{stage + 1}_block{block + 1}")
    x = layers.Activation("linear", name="features")(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name=name)

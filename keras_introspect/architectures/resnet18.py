"""ResNet-18 (He et al., 2016): a CIFAR stem for small images, an ImageNet stem for photos.

* `stem="cifar"`: a 3×3 stride-1 convolution and no max-pool — the ResNet-18
  of most CIFAR distillation papers (11 M parameters); the last feature map is
  1/8 of the input (4×4 at 32 px).
* `stem="imagenet"`: a 7×7 stride-2 convolution and a 3×3 stride-2 max-pool,
  as in the original network; the last feature map is 1/32 of the input
  (4×4 at 128 px, 2×2 at 64 px).

The default picks the CIFAR stem below 64 px and the ImageNet stem from 64 px
on. `width` scales the 64-128-256-512 filters: `width=32` (2.8 M parameters)
trains about 4× faster on a CPU.
"""

import keras
from keras import layers

from keras_introspect.architectures.resnet_cifar import basic_block, classifier_head, conv_bn
from keras_introspect.errors import InputError

STEMS = ("cifar", "imagenet")


def resnet18(num_classes=10, input_shape=(32, 32, 3), stem=None, width=64, name=None):
    """ResNet-18 with a GAP → Dense logits head.

    Args:
        num_classes: number of output logits.
        input_shape: `(height, width, channels)`.
        stem: `"cifar"`, `"imagenet"` or `None` (by image size: ImageNet from 64 px).
        width: filters of the first stage (64 in the paper); the later stages
            double it.
        name: model name (default `resnet18`, or `resnet18_w{width}`).

    Returns:
        A Functional `keras.Model`; its last spatial layer is `features`.

    Example:
    >>> model = resnet18(10, (128, 128, 3), width=32)   # Imagenette at 128 px
    """
    if stem is None:
        stem = "imagenet" if min(input_shape[:2]) >= 64 else "cifar"
    if stem not in STEMS:
        raise InputError(f"Unknown ResNet-18 stem {stem!r}; choose one of {STEMS}.")
    if int(width) < 1:
        raise InputError(f"width must be >= 1, got {width}.")
    width = int(width)
    inputs = keras.Input(input_shape, name="images")
    if stem == "cifar":
        x = conv_bn(inputs, width, 3, 1, "stem")
    else:
        x = conv_bn(inputs, width, 7, 2, "stem")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage in range(4):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, width * 2**stage, strides, f"stage{stage + 1}_block{block + 1}")
    x = layers.Activation("linear", name="features")(x)
    default_name = "resnet18" if width == 64 else f"resnet18_w{width}"
    return keras.Model(inputs, classifier_head(x, num_classes), name=name or default_name)


def resnet18_w32(num_classes=10, **kwargs):
    """ResNet-18 at half width (32-64-128-256 filters, 2.8 M parameters)."""
    return resnet18(num_classes, width=32, **kwargs)

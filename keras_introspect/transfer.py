"""Transfer learning with a pretrained base: freeze it, train the head, then fine-tune.

The two-stage recipe (keras.io, "Transfer learning & fine-tuning"), with any method of this library:

1. Freeze the base (`freeze(base)`; Keras runs the BatchNorm layers of a non-trainable base in
   inference mode) and train the head — `IntrospectiveModel(backbone).fit(...)`.
2. `unfreeze(base)`: its weights train again but its BatchNorm layers stay frozen, then compile
   again (a change of `trainable` takes effect at the next `compile`) with a learning rate about
   ten times lower, and fit again.

Why BatchNorm stays frozen in stage 2: in Keras 3 the `training` argument of the outer model's
call reaches every nested layer, overriding a `base(x, training=False)` written in the graph
(measured with Keras 3.15: the moving statistics of such a base move under `fit`). A non-trainable
BatchNorm layer runs in inference mode whatever `training` says, so freezing those layers is what
keeps the pretrained statistics.

Example:
>>> base = keras.applications.EfficientNetV2B0(include_top=False, weights="imagenet")
>>> ki.transfer.freeze(base)
>>> inputs = keras.Input((224, 224, 3))
>>> outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(base(inputs, training=False)))
>>> model = ki.IntrospectiveModel(keras.Model(inputs, outputs))
>>> model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"]); model.fit(train, epochs=5)
>>> ki.transfer.unfreeze(base)
>>> model.compile(optimizer=keras.optimizers.Adam(1e-4), metrics=["accuracy"]); model.fit(train, epochs=5)
"""

import keras

from keras_introspect.errors import InputError


def batchnorm_layers(model):
    """Every BatchNormalization layer of `model`, nested models included."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def check_model(base):
    if not isinstance(base, keras.layers.Layer):
        raise InputError(f"freeze and unfreeze take a keras Model or layer (the pretrained base), got "
                         f"{type(base).__name__}.")


def freeze(base):
    """Stage 1: no weight of `base` trains and its BatchNorm layers run in inference mode.

    Returns:
        `base`.
    """
    check_model(base)
    base.trainable = False
    return base


def unfreeze(base, batchnorm=False):
    """Stage 2: the weights of `base` train again; its BatchNorm layers stay frozen unless `batchnorm`.

    Args:
        base: the pretrained model.
        batchnorm: also train the BatchNorm layers (and update their statistics) — rarely wanted for
            pretrained statistics on a small dataset, but needed for a base with random weights, whose
            statistics are still at their initial values.

    Returns:
        `base`. Compile the model again for the change to take effect.
    """
    check_model(base)
    base.trainable = True
    # set on each layer: Keras does not pass `trainable = True` down to sublayers of a model that is
    # already trainable
    for layer in batchnorm_layers(base):
        layer.trainable = bool(batchnorm)
    return base


__all__ = ["batchnorm_layers", "freeze", "unfreeze"]

"""Choosing a `tf.distribute` strategy, and synchronized BatchNorm."""

import json
import os

import keras
import tensorflow as tf
from keras_introspect.errors import InputError

STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")


def get_strategy(name="auto"):
    """A `tf.distribute.Strategy` by name.

    Args:
        name: `"auto"` (MirroredStrategy over all GPUs when there are several,
            else the default strategy), `"one"` (one device), `"mirrored"`
            (all local devices), `"multiworker"` (MultiWorkerMirroredStrategy,
            configured by the `TF_CONFIG` environment variable) or `"tpu"`.

    Raises:
        ValueError: for an unknown name, `multiworker` without `TF_CONFIG`, or
            `tpu` without a TPU.
    """
    if name not in STRATEGIES:
        raise InputError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}.")
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise InputError(
                "--strategy multiworker needs the TF_CONFIG environment variable describing the "
                'cluster, e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": '
                '{"type": "worker", "index": 0}} (see docs/distributed.md).'
            )
        json.loads(os.environ["TF_CONFIG"])
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as error:
        raise InputError(f"--strategy tpu: no TPU found ({error}).") from None
    return tf.distribute.TPUStrategy(resolver)


def synchronize_batchnorm(model):
    """A copy of `model` whose BatchNormalization layers synchronize across replicas.

    Under a strategy each replica normalizes with its own batch statistics;
    with `synchronized=True` they use the statistics of the global batch, so
    training matches one device with the same global batch. Weights are copied.
    """

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    synced = keras.models.clone_model(model, clone_function=clone)
    synced.set_weights(model.get_weights())
    return synced

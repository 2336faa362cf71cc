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
        check_tf_config(os.environ["TF_CONFIG"])
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as error:
        raise InputError(f"--strategy tpu: no TPU found ({error}).") from None
    return tf.distribute.TPUStrategy(resolver)


def check_tf_config(text):
    """Refuse a `TF_CONFIG` that is not JSON, names no cluster, or whose task is not in the cluster.

    Raises:
        InputError: naming TF_CONFIG and what is wrong with it.
    """
    try:
        config = json.loads(text)
    except ValueError as error:
        raise InputError(f"TF_CONFIG is not valid JSON ({error}): {text[:80]!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise InputError('TF_CONFIG needs "cluster" ({"worker": ["host:port", ...]}) and "task" '
                         '({"type": "worker", "index": 0}); got ' + f"{text[:80]!r}")
    members = cluster.get(task.get("type"))
    index = task.get("index")
    if not isinstance(members, list) or isinstance(index, bool) or not isinstance(index, int) \
            or not 0 <= index < len(members):
        raise InputError(f"TF_CONFIG's task {task} is not in its cluster {cluster}: the type must be a key of "
                         "the cluster and the index a position in its list.")
    return config


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

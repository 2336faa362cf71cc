"""Run in a fresh process: split the CPU into 2 logical devices, then, for each method named on the command line,
train the same model on one device and under MirroredStrategy and print the results as one JSON line."""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from conftest import tiny_backbone  # noqa: E402

import keras_introspect as ki  # noqa: E402


def two_resolution_cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x))


def train(strategy, method):
    with strategy.scope():
        backbone = tiny_backbone(seed=0)
        if method == "il":
            model = ki.IntrospectiveModel(backbone, alpha=0.5, temperature=2.0, warmup_epochs=0, ramp_epochs=0)
        elif method == "dml":
            model = ki.MutualLearningModel(backbone, peers=[tiny_backbone(seed=1)])
        elif method in ("kd", "isl"):
            model = ki.TeacherDistillationModel(backbone, tiny_backbone(seed=2), teacher_targets="uniform")
        elif method == "confidence_penalty":
            model = ki.StandardModel(backbone, confidence_penalty=0.2)
        elif method == "standard":
            model = ki.StandardModel(backbone)
        elif method == "tfkd":
            model = ki.TeacherFreeModel(backbone)
        elif method == "il_syncbn":
            # The explanation taps a layer: its view must exist before the replicas trace the step,
            # or the synchronized BatchNorm's all-reduces pair up wrongly across replicas.
            backbone = ki.distribute.synchronize_batchnorm(tiny_backbone(seed=0, batchnorm=True))
            model = ki.IntrospectiveModel(backbone, alpha=0.5, warmup_epochs=0, ramp_epochs=0)
        elif method == "il_sequential":
            # The most common Keras model: a Sequential backbone, its BatchNorm synchronized.
            keras.utils.set_random_seed(0)
            backbone = ki.distribute.synchronize_batchnorm(keras.Sequential([
                keras.Input((8, 8, 3)), keras.layers.Conv2D(6, 3, padding="same"), keras.layers.BatchNormalization(),
                keras.layers.ReLU(), keras.layers.Conv2D(4, 3, padding="same", activation="tanh"),
                keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)]))
            model = ki.IntrospectiveModel(backbone, alpha=0.5, warmup_epochs=0, ramp_epochs=0)
        elif method == "il_variants":
            model = ki.IntrospectiveModel(backbone, alpha=0.5, warmup_epochs=0, ramp_epochs=0, target_ema=0.5,
                                          num_examples=32, class_targets=True, class_momentum=0.5,
                                          mass_schedule="linear")
        elif method == "pskd":
            model = ki.ProgressiveSelfKDModel(backbone, num_examples=32)
        elif method == "ols":
            model = ki.OnlineLabelSmoothingModel(backbone)
        elif method == "frskd":
            # Two resolutions, no BatchNorm in the classifier; the self-teacher's
            # BatchNorm synchronized, so 2 replicas see the global batch statistics.
            model = ki.FRSKDModel(two_resolution_cnn())
            model.self_teacher = ki.distribute.synchronize_batchnorm(model.self_teacher)
        else:
            model = ki.StandardModel(backbone, label_smoothing=0.1)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = (np.arange(32) % 5).astype("int32")
    if method == "isl":
        # 4 epochs in 3 phases: all instances, the easiest half, then all of them easy → hard.
        curriculum = ki.InstanceSequenceCurriculum(x, y, batch_size=8, epochs=4, phases=3, augment=False)
        history = model.fit(curriculum.dataset(), epochs=4, callbacks=[curriculum], verbose=0)
        assert [round(f, 2) for _, f, _ in curriculum.history] == [0.5, 1.0], curriculum.history
    elif method in ("pskd", "ols", "il_variants"):
        # 3 epochs: the state of epoch 1 (last predictions, class soft labels) shapes epoch 2's targets.
        ds = tf.data.Dataset.from_tensor_slices((x, y, np.arange(32)))
        ds = ds.map(ki.data.with_example_id) if method != "ols" else ds.map(lambda a, b, i: (a, b))
        history = model.fit(ds.batch(8), epochs=3, verbose=0)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        history = model.fit(ds, epochs=2, verbose=0)
    return [w.numpy().tolist() for w in model.backbone.trainable_weights], history.history


if __name__ == "__main__":
    # One process for every method named: starting TensorFlow costs most of a method's run here. A method that
    # fails prints its traceback in its own line, so its test fails with it and the others still report.
    import traceback

    # One MirroredStrategy for all of them: each strategy numbers its collective all-reduces from the same start,
    # so a second strategy in the process would pair its all-reduces with the first's.
    one, two = tf.distribute.OneDeviceStrategy("/cpu:0"), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for method in sys.argv[1:]:
        try:
            one_w, one_h = train(one, method)
            two_w, two_h = train(two, method)
            max_diff = max(float(np.abs(np.array(a) - np.array(b)).max()) for a, b in zip(one_w, two_w))
            line = {"method": method, "max_weight_diff": max_diff, "one": one_h, "two": two_h}
        except Exception:
            line = {"method": method, "error": traceback.format_exc()}
        print(json.dumps(line), flush=True)

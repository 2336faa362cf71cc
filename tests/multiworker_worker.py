"""One process of a multi-worker (or single-process reference) training run.

Usage: python multiworker_worker.py BATCHES.npz OUT.npz CKPT_DIR EPOCHS [FAIL_AFTER_EPOCH]
BATCHES.npz holds `x` and `y`: the normalized images of every step's global batch (`batches` below,
made once by the test from the shared CIFAR-10 copy, so that no process decodes the 60,000 files).
With TF_CONFIG set this is one worker of a MultiWorkerMirroredStrategy
cluster; without it, the single-process reference on the same global batch.
FAIL_AFTER_EPOCH makes the process die right after that epoch's checkpoint.
Environment: KI_METHOD (il | standard), KI_BACKBONE (cnn | resnet8 |
resnet8_sync_bn), KI_PERMUTE=1 (reference only: the examples of each global
batch in another order, the same training up to float round-off).
"""

import os
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_introspect as ki

PER_WORKER_BATCH, WORKERS, STEPS = 16, 2, 2


def cnn():
    """A BatchNorm-free CNN: its gradients do not depend on how the global batch
    is split, so 2 workers must match 1 process to float precision."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


def backbone():
    name = os.environ.get("KI_BACKBONE", "cnn")
    if name == "cnn":
        return cnn()
    # ResNet-8 (one block per stage): BatchNorm through a residual network as ResNet-20 has it, at the
    # tracing cost of a third of the layers (six processes build it)
    resnet = ki.architectures.resnet_cifar(8, 10)
    return ki.distribute.synchronize_batchnorm(resnet) if name == "resnet8_sync_bn" else resnet


def batches(arrays):
    """`(x, y)`: the first CIFAR-10 test images (of `ArrayData`), normalized, as many as the run's steps take."""
    splits = ki.data.make_pipelines(arrays, batch_size=8, augment=False)
    count = PER_WORKER_BATCH * WORKERS * STEPS
    return splits.x_test[:count], splits.y_test[:count]


def main():
    batches_file, out, ckpt_dir, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    fail_after = int(sys.argv[5]) if len(sys.argv) > 5 else None
    multiworker = "TF_CONFIG" in os.environ
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if multiworker else tf.distribute.get_strategy()
    with np.load(batches_file) as data:
        x, y = data["x"], data["y"]  # real CIFAR-10 images
    if os.environ.get("KI_PERMUTE") == "1":
        batch = PER_WORKER_BATCH * WORKERS
        order = np.concatenate([start + np.random.default_rng(start).permutation(batch)
                                for start in range(0, len(x), batch)])
        x, y = x[order], y[order]

    def dataset_fn(context, epoch):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if multiworker:  # worker i: examples i, i + 2, ...; together one global batch
            ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
            return ds.batch(PER_WORKER_BATCH)
        return ds.batch(PER_WORKER_BATCH * WORKERS)

    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = ki.IntrospectiveModel(backbone(), warmup_epochs=0, ramp_epochs=0) if os.environ.get("KI_METHOD", "il") == "il" else ki.StandardModel(backbone())
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), metrics=["accuracy"])

    initial = [w.copy() for w in model.get_weights()]
    if fail_after is not None:
        # Run up to the failing epoch, then die without any cleanup.
        ki.distribute.fit_distributed(model, dataset_fn, fail_after + 1, STEPS, strategy, ckpt_dir, verbose=0)
        os._exit(17)
    history = ki.distribute.fit_distributed(model, dataset_fn, epochs, STEPS, strategy, ckpt_dir, verbose=0)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"init{i}": w for i, w in enumerate(initial)})
    np.savez(out, loss=np.array(history.get("loss", [np.nan])), **arrays)


if __name__ == "__main__":
    main()

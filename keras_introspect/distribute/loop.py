"""A distributed training loop for `MultiWorkerMirroredStrategy` (and any strategy).

Keras 3's `fit` fails under MultiWorkerMirroredStrategy since TF 2.16
(keras-team/keras#20585, tensorflow#72388). This loop uses only public API:
it calls the model's own `train_step` under `strategy.run`, so every method's
loss, scaling and metrics are exactly those of `fit`, and it checkpoints
after every epoch so that a run killed mid-way resumes where it stopped.
"""

import os

import keras
import tensorflow as tf


def is_chief(strategy):
    """True on the one worker that writes checkpoints and artefacts."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def _checkpoint_dir(directory, strategy):
    """Only the chief writes to `directory`; the others to a private one."""
    if is_chief(strategy):
        return directory
    resolver = strategy.cluster_resolver
    return os.path.join(directory, "workers", f"{resolver.task_type}_{resolver.task_id}")


def _create_state(model, strategy, dataset_fn):
    """Create optimizer and metric variables before the loop is traced.

    Variables cannot be created inside the distributed `tf.function`; `fit`
    creates them in a symbolic build, the loop does it here with public API:
    `optimizer.build`, and one eager metric update that is then reset.
    """
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
        context = tf.distribute.InputContext()
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(next(iter(dataset_fn(context, 0))))
        model.compute_metrics(x, y, model.as_prediction(model.logits(x)), sample_weight)
        model.reset_metrics()


def fit_distributed(model, dataset_fn, epochs, steps_per_epoch, strategy=None, checkpoint_dir=None, verbose=1):
    """Train a compiled library model with a custom loop under `strategy`.

    Args:
        model: a `ClassifierTrainer` built and compiled inside `strategy.scope()`.
        dataset_fn: `dataset_fn(input_context, epoch)` → the *per-replica*
            batched `tf.data.Dataset` of this input pipeline for that epoch
            (shard with `input_context.input_pipeline_id`; batch with
            `input_context.get_per_replica_batch_size(global_batch)`). Taking
            the epoch makes the data order independent of restarts.
        epochs: total epochs.
        steps_per_epoch: steps per epoch (every worker runs the same number).
        strategy: default: the current strategy.
        checkpoint_dir: where to save after every epoch and resume from.
        verbose: print one line of metrics per epoch (chief only).

    Returns:
        A dict of per-epoch metric lists, like `History.history`, for the
        epochs run in this call.
    """
    strategy = strategy or tf.distribute.get_strategy()
    _create_state(model, strategy, dataset_fn)
    history = {}
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = None
    start = 0
    if checkpoint_dir:
        manager = tf.train.CheckpointManager(checkpoint, _checkpoint_dir(checkpoint_dir, strategy), max_to_keep=2)
        # Every worker restores the chief's latest checkpoint.
        latest = tf.train.latest_checkpoint(checkpoint_dir)
        if latest:
            checkpoint.restore(latest)
            start = int(round(float(model.epoch.numpy()))) + 1

    @tf.function
    def train_steps(iterator):
        for _ in tf.range(steps_per_epoch):
            strategy.run(model.train_step, args=(next(iterator),))

    for epoch in range(start, epochs):
        model.epoch.assign(float(epoch))
        model.reset_metrics()
        dataset = strategy.distribute_datasets_from_function(lambda ctx, e=epoch: dataset_fn(ctx, e))
        train_steps(iter(dataset))
        logs = {name: float(value) for name, value in model.get_metrics_result().items()}
        for name, value in logs.items():
            history.setdefault(name, []).append(value)
        if manager is not None:
            manager.save(checkpoint_number=epoch)
        if verbose and is_chief(strategy):
            print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
    return history

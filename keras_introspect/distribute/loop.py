"""A distributed training loop for `MultiWorkerMirroredStrategy` (and any strategy).

Keras 3's `fit` fails under MultiWorkerMirroredStrategy since TF 2.16
(keras-team/keras#20585, tensorflow#72388). This loop uses only public API:
it calls the model's own `train_step` under `strategy.run`, so every method's
loss, scaling and metrics are exactly those of `fit`, and it checkpoints
after every epoch so that a run killed mid-way resumes where it stopped.
"""

import glob
import json
import math
import numbers
import os

import keras
import tensorflow as tf

from keras_introspect.errors import InputError, NonFiniteLossError
from keras_introspect.methods.base import EpochCounter
from keras_introspect.paths import write_json


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
        expected = len(model.backbone.inputs[0].shape)
        images = x["images"] if isinstance(x, dict) and "images" in x else x
        if len(images.shape) != expected:
            raise InputError(f"dataset_fn must return batched datasets: its inputs have shape {tuple(images.shape)}, "
                             f"a batch of this model's inputs has rank {expected} (add .batch(...)).")
        model.compute_metrics(x, y, model.as_prediction(model.logits(x)), sample_weight)
        model.reset_metrics()


def checkpoint_epochs(directory):
    """`{epoch: prefix}` of the checkpoints in `directory` that have an index file."""
    found = {}
    for index in glob.glob(os.path.join(directory, "ckpt-*.index")):
        prefix = index[: -len(".index")]
        suffix = prefix.rsplit("-", 1)[-1]
        if suffix.isdigit():
            found[int(suffix)] = prefix
    return found


def restore_newest(checkpoint, directory, log=print):
    """Restore the newest checkpoint of `directory` that restores completely.

    A checkpoint whose index or data file is missing, truncated or damaged is
    skipped with a message naming it, and the next older one is tried; the
    `checkpoint` state file is not trusted (a damaged one must not restart a
    run from scratch).

    Returns:
        The epoch number of the restored checkpoint, or `None` when the
        directory has no checkpoint at all.

    Raises:
        InputError: when checkpoints exist but none of them restores.
    """
    found = checkpoint_epochs(directory)
    orphans = sorted(int(p.rsplit("-", 1)[-1].split(".")[0]) for p in glob.glob(os.path.join(directory, "ckpt-*.data-*")))
    for epoch in sorted(set(orphans) - set(found), reverse=True):
        log(f"Checkpoint {os.path.join(directory, f'ckpt-{epoch}')} has no index file; skipping it.")
    errors = []
    for epoch in sorted(found, reverse=True):
        try:
            checkpoint.read(found[epoch]).assert_existing_objects_matched()
            if errors:
                log(f"Resumed from {found[epoch]}, the newest checkpoint that restores.")
            return epoch
        except (tf.errors.OpError, ValueError, IndexError, AssertionError) as error:
            errors.append(f"{found[epoch]}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            log(f"Checkpoint {found[epoch]} does not restore ({errors[-1]}); trying an older one.")
    if errors or orphans:
        raise InputError(
            f"No checkpoint in {directory} restores ({'; '.join(errors) or 'index files missing'}). "
            "Delete the directory to start the run again."
        )
    return None


def _verify(prefix):
    """Read every tensor of a just-written checkpoint back (raises if it is damaged)."""
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)


def save_verified(checkpoint, directory, epoch, keep=2):
    """Write the checkpoint of `epoch`, read it back, then delete all but the `keep` newest verified ones."""
    os.makedirs(directory, exist_ok=True)
    prefix = checkpoint.write(os.path.join(directory, f"ckpt-{epoch}"))
    _verify(prefix)
    found = checkpoint_epochs(directory)
    newest = sorted(found, reverse=True)
    # The state file only serves TensorFlow tools (tf.train.latest_checkpoint); restores do not trust it.
    tf.compat.v1.train.update_checkpoint_state(directory, prefix,
                                               all_model_checkpoint_paths=[found[e] for e in newest[:keep]])
    for old in newest[keep:]:
        for path in glob.glob(found[old] + ".*"):
            os.remove(path)
    return prefix


def _history_path(directory):
    return os.path.join(directory, "history.json")


def _load_history(directory, epochs_done):
    """The per-epoch logs of the epochs before `epochs_done`, as saved beside the checkpoints."""
    path = _history_path(directory)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = json.load(f)
    return [row for row in rows if row["epoch"] <= epochs_done]


def _as_history(rows):
    history = {}
    for row in rows:
        for name, value in row.items():
            if name != "epoch":
                history.setdefault(name, []).append(value)
    return history


def check_same_model(model, directory):
    """Record which model a checkpoint folder belongs to; refuse to resume it into another.

    A checkpoint restores into any model with matching variable shapes, so an IL run's folder would
    resume a `StandardModel` silently and mix both histories.

    Raises:
        InputError: the folder holds checkpoints of another model class or configuration.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "model.json")
    # the method and its options; the backbone's own names differ between builds (a wrong
    # architecture fails on restore anyway)
    config = {k: v for k, v in model.get_config().items() if k not in ("name", "backbone", "trainable", "dtype")}
    mine = json.loads(json.dumps({"class": type(model).__name__, "config": config}, default=str, sort_keys=True))
    if os.path.exists(path):
        with open(path) as f:
            theirs = json.load(f)
        if theirs != mine:
            what = "class" if theirs.get("class") != mine["class"] else "configuration"
            raise InputError(f"{directory} holds checkpoints of a {theirs.get('class')} with another {what} than this "
                             f"{mine['class']}; resume it with the same model, or give another checkpoint_dir.")
        return
    write_json(path, mine)


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
        checkpoint_dir: where to save after every epoch and resume from. Each
            checkpoint is read back before older ones are deleted (the two
            newest are kept), and a damaged newest one falls back to the one
            before it (`restore_newest`).
        verbose: print one line of metrics per epoch (chief only).

    Returns:
        A dict of per-epoch metric lists, like `History.history`, for every
        epoch of the run — those before a restart too (kept beside the
        checkpoints).

    Raises:
        NonFiniteLossError: when an epoch ends with a NaN or infinite loss
            (nothing is saved for that epoch).
    """
    for name, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InputError(f"{name} must be a whole number >= 1, got {value!r}.")
    steps_per_epoch, epochs = int(steps_per_epoch), int(epochs)
    if getattr(model, "optimizer", None) is None:
        raise InputError(f"{type(model).__name__} is not compiled: call model.compile(optimizer=...) in "
                         "strategy.scope() before fit_distributed.")
    strategy = strategy or tf.distribute.get_strategy()
    if checkpoint_dir:
        check_same_model(model, _checkpoint_dir(checkpoint_dir, strategy))
    _create_state(model, strategy, dataset_fn)
    model.build_views()  # before the replicas trace train_step, as fit does (see ClassifierTrainer.build_views)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    own_dir = None
    rows, start = [], 0
    if checkpoint_dir:
        own_dir = _checkpoint_dir(checkpoint_dir, strategy)
        # Every worker restores the chief's newest checkpoint that restores.
        log = print if is_chief(strategy) else (lambda message: None)
        restored = restore_newest(checkpoint, checkpoint_dir, log=log)
        if restored is not None:
            start = int(round(float(model.epoch.numpy()))) + 1
            rows = _load_history(own_dir, start)

    # The same callback `fit` adds: the epoch (and the run's length) that schedules inside train_step read.
    counter = EpochCounter()
    counter.set_model(model)
    counter.set_params({"epochs": epochs, "steps": steps_per_epoch})
    counter.on_train_begin()

    @tf.function
    def train_steps(iterator):
        for _ in tf.range(steps_per_epoch):
            strategy.run(model.train_step, args=(next(iterator),))

    for epoch in range(start, epochs):
        counter.on_epoch_begin(epoch)
        model.reset_metrics()
        dataset = strategy.distribute_datasets_from_function(lambda ctx, e=epoch: dataset_fn(ctx, e))
        try:
            train_steps(iter(dataset))
        except tf.errors.OutOfRangeError:
            raise InputError(f"The data of epoch {epoch + 1} ran out before steps_per_epoch={steps_per_epoch} steps; "
                             "give at most as many steps as dataset_fn yields batches (or .repeat() it).") from None
        logs = {name: float(value) for name, value in model.get_metrics_result().items()}
        if not math.isfinite(logs.get("loss", 0.0)):
            raise NonFiniteLossError(
                f"The training loss became {logs['loss']} in epoch {epoch + 1}. Check the inputs and labels for "
                "NaN or Inf, or lower the learning rate; the last checkpoint is from the epoch before."
            )
        rows.append({"epoch": epoch + 1, **logs})
        if own_dir is not None:
            save_verified(checkpoint, own_dir, epoch)
            write_json(_history_path(own_dir), rows)  # read back on resume: never half-written
        if verbose and is_chief(strategy):
            print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
    return _as_history(rows)

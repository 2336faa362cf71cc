"""The one training path shared by the command line, the benchmarks and the tutorials.

A recipe is the part of an experiment that is not the method: architecture,
optimizer, learning-rate schedule, weight decay, batch size, data subset and
augmentation — the fields of a `benchmark.Protocol`. `train_method` turns a
dataset, a recipe, a method name (`methods.registry.METHODS`) and a seed into a
trained model, the same way whether the command line or a benchmark asks, so
every method in a comparison trains with exactly the same budget.
"""

import csv
import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from keras_introspect import architectures
from keras_introspect.distribute import fit_distributed, synchronize_batchnorm
from keras_introspect.methods import registry
from keras_introspect.methods.curriculum import InstanceSequenceCurriculum
from keras_introspect.methods.registry import METHODS, build_method
from keras_introspect.errors import InputError
from keras_introspect.paths import write_json

SCHEDULES = ("cosine", "step", "constant")


def sgd(learning_rate, epochs, steps_per_epoch, momentum=0.9, weight_decay=5e-4, schedule="cosine"):
    """SGD with momentum, decoupled weight decay and a per-step LR schedule.

    Args:
        learning_rate: peak learning rate.
        epochs, steps_per_epoch: the training length the schedule spans.
        momentum: SGD momentum.
        weight_decay: decoupled decay; BatchNorm parameters and biases are
            excluded, as is usual for CIFAR ResNets.
        schedule: `"cosine"` (to zero), `"step"` (×0.1 at 50% and 75%) or `"constant"`.

    Returns:
        A `keras.optimizers.SGD`.

    Example:
    >>> model.compile(optimizer=sgd(0.05, epochs=15, steps_per_epoch=79), metrics=["accuracy"])
    """
    total = max(1, epochs * steps_per_epoch)
    if schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total)
    elif schedule == "step":  # ×0.1 at 50% and 75% of training (epochs 100 and 150 of 200)
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            [total // 2, 3 * total // 4], [learning_rate, learning_rate * 0.1, learning_rate * 0.01]
        )
    elif schedule == "constant":
        lr = learning_rate
    else:
        raise InputError(f"Unknown schedule {schedule!r}; choose one of {SCHEDULES}.")
    optimizer = keras.optimizers.SGD(lr, momentum=momentum, weight_decay=weight_decay or None)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def check_teacher_normalization(teacher, splits):
    """Refuse a teacher file trained on differently normalized inputs.

    A teacher sees the student's normalized batches; with other statistics
    its BatchNorm layers (in inference mode) are off and its soft labels
    quietly degrade. The statistics are read from the `metrics.json`
    (`keras-introspect train`) or `teacher.json` (`keras-introspect
    benchmark`) beside the file; without either there is nothing to check.
    """
    if not isinstance(teacher, str):
        return
    directory = os.path.dirname(os.path.abspath(teacher))
    for name in ("metrics.json", "teacher.json"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            with open(path) as f:
                recorded = json.load(f).get("normalization")
            break
    else:
        return
    if recorded is None:
        return
    for key in ("mean", "std"):
        # 2%: statistics of the same data agree far closer; another data set or scale does not.
        if not np.allclose(recorded[key], getattr(splits, key), rtol=0.02):
            raise InputError(
                f"The teacher {teacher!r} was trained with input normalization {key} {recorded[key]} "
                f"(from {path}); this run normalizes with {getattr(splits, key).tolist()}. "
                "Retrain the teacher with the current data pipeline."
            )


class EpochTimes(keras.callbacks.Callback):
    """Keeps each finished epoch's duration in a JSON file, so a resumed run knows its whole training time.

    Args:
        path: the JSON file (`{epoch: seconds}`); an epoch run again after an
            interruption keeps its latest time.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def read(self):
        if not os.path.exists(self.path):
            return {}
        with open(self.path) as f:
            return {int(epoch): seconds for epoch, seconds in json.load(f).items()}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        times = self.read()
        times[epoch] = time.perf_counter() - self._start
        write_json(self.path, times)


def train_seconds(history, start):
    """Seconds spent training: the sum of every epoch's duration when `history`
    times them all (a run resumed by `resumable` spans several processes), else
    the wall time since `start` (a `time.time()` value)."""
    return sum(history["epoch_seconds"]) if "epoch_seconds" in history else time.time() - start


def plain_copy(model):
    """A trained library model without its training state: a fresh instance of its class with its weights.

    What a file others only predict with (a teacher, a published model) needs: `model.save` keeps the
    optimizer's slots too (for SGD with momentum, another copy of every weight).

    Args:
        model: a library model (`ClassifierTrainer`), trained.

    Returns:
        An uncompiled model of the same class and configuration, with the same weights.

    Example:
    >>> ki.recipes.plain_copy(model).save("teacher.keras")
    """
    fresh = model.__class__.from_config(model.get_config())
    fresh.backbone.set_weights(model.backbone.get_weights())
    return fresh


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose state survives a failure while it is written.

    Keras copies the last state onto the previous one and then writes the new one in place, so a
    full disk (or a kill) during the write can leave both damaged — and a truncated weights file
    fails on resume with an error that Keras's fallback does not catch. Here the new state is
    written to temporary files and verified (its weights file opens and lists every variable);
    only then does the last good state become the previous one and the new one take its place,
    each by an atomic rename. On resume a state that is missing or cannot be loaded gives way to
    the previous one, with a message.

    Args:
        backup_dir: the directory of the state.
    """

    def __init__(self, backup_dir):
        super().__init__(backup_dir, double_checkpoint=True, delete_checkpoint=False)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        weights, metadata = self._weights_path + ".tmp.weights.h5", self._training_metadata_path + ".tmp"
        try:
            self.model.save_weights(filepath=weights, overwrite=True)
            check_weights_file(weights)
            with open(metadata, "w") as f:
                json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
        except BaseException:
            for path in (weights, metadata):
                if os.path.exists(path):
                    os.remove(path)
            raise
        for current, previous in ((self._weights_path, self._prev_weights_path),
                                  (self._training_metadata_path, self._prev_training_metadata_path)):
            if os.path.exists(current):
                os.replace(current, previous)
        os.replace(weights, self._weights_path)
        os.replace(metadata, self._training_metadata_path)

    def on_train_begin(self, logs=None):
        try:
            if not os.path.exists(self._training_metadata_path) and os.path.exists(self._prev_training_metadata_path):
                raise OSError("the last state is missing")  # stopped between the two renames of a save
            self._load_model()
        except Exception as error:  # a damaged file raises OSError, RuntimeError, ValueError, KeyError...
            if not os.path.exists(self._prev_training_metadata_path):
                raise InputError(f"The saved training state in {self.backup_dir} cannot be loaded ({error}) and "
                                 "there is no earlier one; delete that directory to start the run afresh.") from error
            print(f"The last saved training state in {self.backup_dir} cannot be loaded ({error}); resuming from "
                  "the one before it.", flush=True)
            shutil.copyfile(self._prev_weights_path, self._weights_path)
            shutil.copyfile(self._prev_training_metadata_path, self._training_metadata_path)
            try:
                self._load_model()
            except Exception as second:
                raise InputError(f"Neither saved training state in {self.backup_dir} can be loaded ({second}); "
                                 "delete that directory to start the run afresh.") from second


def check_weights_file(path):
    """Raise unless `path` is a readable Keras weights file (an HDF5 file whose every dataset can be read)."""
    import h5py

    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)


def resumable(backup_dir):
    """Callbacks that make a run survive interruption, and a reader of its whole history.

    `SafeBackupAndRestore` saves weights, optimizer state and the epoch after
    every epoch, atomically (keeping the previous save too, in case the newest
    is damaged) and `fit` continues from there when run again with the same
    directory. `fit`'s own history then holds only the epochs after the
    restart, so every epoch's logs also go to a CSV file in the directory.

    Returns:
        `(callbacks, read_history)`: pass `callbacks` to `fit`; after it,
        `read_history()` gives the history of all epochs, the latest log of an
        epoch winning if it was logged twice (a kill between the CSV row and
        the checkpoint), with `epoch_seconds` (each epoch's duration, training
        and validation) when every epoch was timed.
    """
    os.makedirs(backup_dir, exist_ok=True)
    csv_path = os.path.join(backup_dir, "history.csv")
    timer = EpochTimes(os.path.join(backup_dir, "epoch_seconds.json"))
    callbacks = [
        timer,
        SafeBackupAndRestore(os.path.join(backup_dir, "state")),
        keras.callbacks.CSVLogger(csv_path, append=True),
    ]

    def read_history():
        rows = {}
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("epoch") == "epoch":  # a header repeated by an appending restart
                    continue
                rows[int(row["epoch"])] = row
        keys = [k for k in next(iter(rows.values())) if k != "epoch"]
        history = {k: [float(rows[e][k]) for e in sorted(rows)] for k in keys}
        times = timer.read()
        # The CSV numbers epochs from 0, as the callbacks do; a run begun before epochs were timed has gaps.
        if all(e in times for e in rows):
            history["epoch_seconds"] = [times[e] for e in sorted(rows)]
        return history

    return callbacks, read_history


def fit_source(source, protocol):
    """The data a run fits on: `source` itself, or, when the protocol holds out a validation split, the
    training images with that split as the held-out one (`ArrayData.validation_split`, always drawn
    with seed 0) — the test split then plays no part in training or in any choice."""
    if not protocol.validation_fraction:
        return source
    if not hasattr(source, "validation_split"):
        raise InputError(f"The {protocol.name!r} protocol holds out a validation split of the training images, "
                         "which needs the dataset in memory (data.load_arrays), not streamed from files.")
    return source.validation_split(protocol.validation_fraction, seed=0)


def make_splits(source, protocol, seed):
    """The recipe's pipelines of a dataset (`ArrayData` or a streaming source).

    The training subset is drawn with seed 0 whatever `seed` is, so that every
    seed and every method sees the same images. With a protocol that holds out
    a validation split, `splits.test` is that split (see `fit_source`).
    """
    # None keeps each source's own default (the dataset's statistics)
    kwargs = {} if protocol.preprocessing is None else {"preprocessing": protocol.preprocessing}
    return fit_source(source, protocol).splits(batch_size=protocol.batch_size, augment=protocol.augment,
                                               train_size=protocol.train_size, seed=seed, subset_seed=0, **kwargs)


def is_multiworker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def train_method(source, protocol, method, options=None, seed=0, teacher=None, strategy=None, callbacks=(),
                 verbose=1, backup_dir=None, checkpoint_dir=None):
    """Build, compile and train one method under a recipe.

    Args:
        source: the dataset: `data.ArrayData` or a streaming source
            (`data.open_source`).
        protocol: the recipe (`benchmark.Protocol`): architecture, epochs,
            batch size, learning rate, schedule, weight decay, subset,
            augmentation, BatchNorm momentum and synchronization.
        method: a name in `METHODS`.
        options: the method's options (defaults fill the rest).
        seed: seed of initialization, data order and augmentation.
        teacher: `.keras` path or model, for the teacher methods.
        strategy: a `tf.distribute.Strategy` (default: the current one).
            Under `MultiWorkerMirroredStrategy` training runs through
            `distribute.fit_distributed` with checkpoints in `checkpoint_dir`.
        callbacks: Keras callbacks for `fit`.
        verbose: Keras progress display.
        backup_dir: `fit` saves its state here after every epoch and, run
            again with the same directory, resumes from it (`resumable`).
        checkpoint_dir: per-epoch checkpoints of the multi-worker loop (it
            resumes from them likewise).

    Returns:
        `(model, splits, history)`: the trained method's model, the data
        pipelines and the history dict of every epoch.

    Example:
    >>> protocol = ki.benchmark.get("cpu")
    >>> model, splits, history = train_method(ki.data.load_arrays("cifar10"), protocol, "il", {"alpha": 0.3}, seed=1)
    """
    spec = registry.get(method)
    options = spec.resolve(**(options or {}))
    strategy = strategy or tf.distribute.get_strategy()
    multiworker = is_multiworker(strategy)
    if multiworker and spec.curriculum:
        raise registry.OptionError(
            f"Method {method} reorders the training set every phase through a Keras callback, which the "
            "multi-worker loop does not run; train it with --strategy mirrored (one machine) instead."
        )
    keras.utils.set_random_seed(seed)
    splits = make_splits(source, protocol, seed)
    if spec.teacher:
        check_teacher_normalization(teacher, splits)
    batch_size = protocol.batch_size
    # fit_distributed runs whole global batches on every worker.
    steps = splits.num_train // batch_size if multiworker else -(-splits.num_train // batch_size)
    with strategy.scope():
        backbone = architectures.get(protocol.arch, splits.num_classes, splits.input_shape,
                                     bn_momentum=protocol.bn_momentum, weights=protocol.weights)
        if protocol.sync_bn:
            backbone = synchronize_batchnorm(backbone)
        model = spec.build(backbone, teacher=teacher, num_examples=splits.num_train, **options)
        model.compile(optimizer=sgd(protocol.lr, protocol.epochs, steps, weight_decay=protocol.weight_decay,
                                    schedule=protocol.schedule), metrics=["accuracy"])
    if multiworker:
        def dataset_fn(context, epoch):
            examples = splits.train_examples_with_ids if getattr(model, "needs_example_ids", False) \
                else splits.train_examples
            examples = examples.shard(context.num_input_pipelines, context.input_pipeline_id)
            return examples.batch(context.get_per_replica_batch_size(batch_size), drop_remainder=True)

        history = fit_distributed(model, dataset_fn, protocol.epochs, steps, strategy, checkpoint_dir,
                                  verbose=verbose)
    else:
        callbacks = list(callbacks)
        if backup_dir is not None:
            extra, read_history = resumable(backup_dir)
            callbacks += extra
        history = fit(model, method, splits, protocol.epochs, verbose=verbose, callbacks=callbacks)
        if backup_dir is not None:
            history = read_history()
    return model, splits, history


def fit(model, method, splits, epochs, verbose=1, callbacks=()):
    """`model.fit` on `splits` the way `method` trains; returns the history dict.

    Methods with a curriculum (ISL) are fed through an
    `InstanceSequenceCurriculum` (same number of steps per epoch); methods
    with per-example state (PS-KD) get the examples' ids.
    """
    callbacks = list(callbacks)
    spec = registry.get(method)
    train = splits.train_with_ids if getattr(model, "needs_example_ids", False) else splits.train
    if spec.curriculum:
        if splits.x_train is None:
            raise registry.OptionError(f"Method {method} orders the training set by the model's losses and needs it "
                                       "in memory; it cannot stream from files.")
        curriculum = InstanceSequenceCurriculum(
            splits.x_train, splits.y_train, splits.batch_size, epochs, phases=min(4, max(2, epochs)),
            augment=splits.augment,
        )
        train = curriculum.dataset()
        callbacks.append(curriculum)
    history = model.fit(train, validation_data=splits.test, epochs=epochs, verbose=verbose, callbacks=callbacks)
    return history.history


__all__ = ["METHODS", "SCHEDULES", "build_method", "fit", "make_splits", "sgd", "train_method"]

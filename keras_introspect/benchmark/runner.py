"""Run methods × seeds on one protocol and collect comparable results."""

import dataclasses
import functools
import os
import platform
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_introspect import recipes
from keras_introspect.errors import InputError
from keras_introspect.methods import registry
from keras_introspect import metrics
from keras_introspect.metrics import expected_calibration_error

TEACHER_METHODS = tuple(name for name, spec in registry.METHODS.items() if spec.teacher)


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step (the data pipeline included)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    @property
    def median(self):
        # The first steps include tracing; the median ignores them.
        return float(np.median(self.seconds)) if self.seconds else float("nan")


@functools.cache
def loaded_commit():
    """The commit of the code this process runs, read once: a sweep that outlives a commit keeps the
    modules it imported, so its later records must not name the newer commit."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line():
    """This process's command line; a notebook kernel's (a launcher and its temporary connection file) is no
    command to rerun. (A process that merely imports ipykernel, like one running notebooks, keeps its own.)"""
    launcher = os.path.basename(sys.argv[0]) if sys.argv else ""
    if "kernel_launcher" in launcher or "-f" in sys.argv[1:2] and sys.argv[2:3] and sys.argv[2].endswith(".json"):
        return "a Jupyter notebook (no command line)"
    return " ".join([os.path.basename(sys.executable)] + sys.argv)


def provenance():
    """Where and with what a result was produced."""
    return {
        "command": command_line(),
        "commit": loaded_commit(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def run_one(arrays, protocol, method, options, seed, config=None, teacher=None, verbose=2, backup_dir=None,
            save_to=None):
    """Train one method with one seed under `protocol`; return a result record.

    Args:
        arrays: `ArrayData` of the protocol's dataset.
        protocol: a `Protocol`.
        method: a `methods.registry.METHODS` name.
        options: the method's options (`methods.registry`).
        seed: seed of initialization, data order and augmentation (the
            training subset is always drawn with seed 0, the same for all).
        config: the configuration's name in reports (default: `method`).
        teacher: `.keras` path for the teacher methods.
        backup_dir: a directory in which the run saves its state after every
            epoch and from which it resumes when started again (see
            `resumable`); `wall_seconds` then counts only the last part,
            `train_seconds` every part's epochs.
        save_to: if given, the trained model is saved there (`.keras`), e.g.
            to export it afterwards; an existing file is never overwritten.
    """
    if save_to is not None and os.path.exists(save_to):
        raise InputError(f"{save_to} exists; refusing to overwrite an earlier run's model")
    origin = provenance()  # the code as it was when the run started
    timer = StepTimer()
    start = time.time()
    model, splits, history = recipes.train_method(arrays, protocol, method, options, seed,
                                                  teacher=teacher if registry.get(method).teacher else None,
                                                  callbacks=[timer], verbose=verbose, backup_dir=backup_dir)
    accuracies = history["val_accuracy"]
    probabilities = test_probabilities(model, splits.test)
    labels = held_out_labels(splits)
    if protocol.validation_fraction:
        scores = validation_and_test(model, splits, arrays, probabilities, labels)
    else:  # the older protocols validate on the test split; no choice may be made on these records
        # only the final epoch: a best-over-epochs test accuracy is a choice made on test (issue 28)
        scores = {"final_accuracy": accuracies[-1], "ece": expected_calibration_error(labels, probabilities)}
    record = {
        "config": config or method, "method": method, "options": options, "seed": seed, **scores,
        "wall_seconds": time.time() - start, "train_seconds": recipes.train_seconds(history, start),
        "step_seconds": timer.median, "history": history,
        "protocol": protocol.name, "dataset": protocol.dataset, "arch": protocol.arch,
        "train_size": splits.num_train, "epochs": protocol.epochs, "batch_size": protocol.batch_size,
        "lr": protocol.lr, "augment": protocol.augment, "validation_fraction": protocol.validation_fraction,
        "normalization": splits.normalization, **origin,
    }
    if save_to is not None:
        os.makedirs(os.path.dirname(os.path.abspath(save_to)), exist_ok=True)
        model.save(save_to)
    if hasattr(model, "ensemble_predict"):  # peers (DML): the ensemble's accuracy too
        ensemble = model.ensemble_predict(splits.test, verbose=0).numpy().argmax(-1)
        record["ensemble_accuracy"] = float((ensemble == labels).mean())
    return record


def validation_and_test(model, splits, arrays, val_probabilities, val_labels):
    """The scores of a run whose protocol holds out a validation split: the final epoch's accuracy and ECE
    on validation (for choices) and on test (for the verdict), and the test ECE after temperature scaling
    fitted on validation — no best-over-epochs number, which would be a choice made on the scored split.
    """
    test = tf.data.Dataset.from_tensor_slices(arrays.x_test).batch(splits.batch_size)
    test = test.map(lambda x: (tf.cast(x, tf.float32) - splits.mean) / splits.std)
    test_probs = test_probabilities(model, test)
    test_labels = np.asarray(arrays.y_test)
    temperature = metrics.fit_temperature(val_labels, val_probabilities)
    return {
        "val_accuracy": accuracy(val_labels, val_probabilities),
        "val_ece": metrics.expected_calibration_error(val_labels, val_probabilities),
        "test_accuracy": accuracy(test_labels, test_probs),
        "test_ece": metrics.expected_calibration_error(test_labels, test_probs),
        "temperature": temperature,
        "test_ece_scaled": metrics.expected_calibration_error(
            test_labels, metrics.scale_temperature(test_probs, temperature)),
        "num_validation": len(val_labels), "num_test": len(test_labels),
    }


def accuracy(labels, probabilities):
    """Top-1 accuracy of predicted distributions."""
    return float((np.argmax(probabilities, axis=-1) == np.ravel(labels)).mean())


def held_out_labels(splits):
    """The held-out labels in the order of `splits.test`."""
    if splits.y_test is not None:
        return np.asarray(splits.y_test)
    return np.concatenate([np.asarray(y) for _, y in splits.test])


def test_probabilities(model, dataset):
    """Predicted class distributions of a method's model on a batched `(x, y)` dataset."""
    outputs = model.predict(dataset, verbose=0)
    return outputs if model.has_softmax else tf.nn.softmax(outputs).numpy()


def train_teacher(arrays, protocol, path, seed=0, verbose=2, backup_dir=None):
    """Train the protocol's teacher (standard training, longer) and save it to `path`.

    `backup_dir`: resume an interrupted teacher run from its last epoch (`recipes.resumable`).
    """
    teacher_protocol = dataclasses.replace(
        protocol,
        arch=protocol.teacher_arch or protocol.arch,
        epochs=protocol.epochs * protocol.teacher_epochs_factor,
    )
    model, splits, history = recipes.train_method(arrays, teacher_protocol, "standard", {}, seed, verbose=verbose,
                                                  backup_dir=backup_dir)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    recipes.plain_copy(model).save(path)  # its students only predict with it
    # fit validated on the held-out split: the test split, or the validation split of a protocol that has one
    held_out = "val_accuracy" if protocol.validation_fraction else "test_accuracy"
    return {"path": path, "arch": teacher_protocol.arch, "epochs": teacher_protocol.epochs,
            held_out: history["val_accuracy"][-1], "history": history,
            "normalization": splits.normalization}
